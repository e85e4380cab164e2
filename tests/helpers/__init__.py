"""The tests' helpers, one module a concern (pytest.ini puts tests/, harness/ and ci/ on the path):

- harness/localapp.py (shared with ci/bench.py): free ports, waiting, child processes, a service
  under gunicorn, a worker, the whole app as ci/up.sh runs it, Prometheus metrics readings;
- harness/podman.py: images built and run with podman; harness/dashboard_page.py: the dashboard in
  Chromium;
- helpers.services: a real redis-server;
- helpers.registry: a real container registry (docker-registry) on loopback;
- helpers.chart: helm renders with the pinned tools;
- helpers.kube: the control plane of ci/cluster.sh, helm and kubectl against it;
- helpers.node: the real node of `ci/cluster.sh up --node` and a release on it;
- helpers.workshop, helpers.httping: commands as the workshop types them;
- helpers.gitlab_local: the pipeline's jobs under gitlab-ci-local;
- helpers.pins: the pinned requirements files;
- helpers.pipeline_deploy: the pipeline's deploy jobs on a cluster, for tests/node.
"""
