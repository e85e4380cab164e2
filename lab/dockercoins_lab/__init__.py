"""The DockerCoins scaling lab: the `dockercoins-lab` command (cli) and its model (scaling)."""
