"""The pipeline's deploy jobs on kwok's cluster: the suite lives in helpers/pipeline_deploy.py,
since tests/node runs it on the real node too."""
from helpers.pipeline_deploy import (  # noqa: F401  (collected here, with this folder's cluster)
    pipeline, test_production_refuses_a_commit_that_never_passed_staging,
    test_review_app_and_its_stop_job, test_staging_then_production_then_rollback)
