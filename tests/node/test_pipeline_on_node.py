"""The pipeline's deploy jobs on the real node: helpers/pipeline_deploy.py's tests, run
by gitlab-ci-local with the shell executor against this cluster, so staging's and production's
`helm test` pods really run, the rollback really rolls pods back, and the stop job really
deletes a namespace with running pods in it. The images come from the node's registry, pushed
under each test commit's short SHA (an all-digit one too), as the pipeline's build jobs push them."""
import pytest

from helpers.pipeline_deploy import (  # noqa: F401  (collected here, with this folder's cluster)
    pipeline, test_production_refuses_a_commit_that_never_passed_staging,
    test_review_app_and_its_stop_job, test_staging_then_production_then_rollback)


@pytest.fixture
def cluster(node_cluster):
    """The `cluster` those tests use: here, the one with the real node."""
    return node_cluster
