// The pod sandbox ("pause") container: it holds the pod's namespaces, reaps zombies, and exits on
// SIGINT or SIGTERM, as Kubernetes' own pause.c does. Built here because no registry can be pulled
// from (ci/node.sh builds it statically and commits it as a one-file image).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		// PID 1 of the pod: reap every exited child so none stays a zombie.
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
