"""The scaling chapter's kubectl side on this folder's cluster (kwok's, or WORKSHOP_KUBECONFIG's):
the suite lives in helpers/workshop_kubectl.py, since tests/node runs it on the real node too."""
from helpers.workshop_kubectl import (  # noqa: F401  (collected here, with this folder's cluster)
    test_logs_and_httping_from_inside_the_cluster, test_select_scale_and_roll_out_as_typed,
    workshop)
