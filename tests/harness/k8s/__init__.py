"""kmock's KubernetesEmulator, extended to behave like a real API server where our correctness depends
on it, and run in a thread so sync tests and a separate operator process can talk to it over HTTP.

Enforced: namespaces must exist; uid/creationTimestamp/resourceVersion/generation; 409 on stale
resourceVersion (PUT, patches carrying one, delete preconditions); status subresource isolation;
patch content types (merge, strategic for built-ins, json-patch; 415 for apply); CRD defaulting,
pruning and validation (OpenAPI + CEL `x-kubernetes-validations`) with the real API server's 422
messages (`cel=False` models an API server without CEL: before Kubernetes 1.25, or with the feature
off); finalizers; ownerReference garbage collection; namespace deletion; label/field selectors in list
and watch; watch resume from resourceVersion (410 when too old) and `timeoutSeconds`; fault injection.

The modules, by job:
- cluster.py: EmulatedCluster, the server in a thread on a loopback port (kubeconfig, client);
- server.py: ApiServer, the HTTP layer (dispatch by verb, fault injection, watch requests);
- store.py: Store, objects and their write semantics, garbage collection, the event log;
- watch.py: what a watcher sees of a change, the event stream;
- kinds.py: the resources served (built-ins and CRDs), load_crds;
- selectors.py, patches.py: label/field selectors; merge and JSON patches;
- status.py: Status responses (ApiError) and the API server's messages for them;
- admission.py: defaulting, pruning and validation of a write, in the API server's order, using
  schema.py (defaulting, pruning), openapi.py and formats.py (OpenAPI schema validation),
  listtype.py (list-type uniqueness), cel.py (CEL rules) and messages.py (field errors, Go formatting).
Their tests are in tests/ beside them.
"""

from tests.harness.k8s.admission import NOT_CHECKED, admit, check, validate
from tests.harness.k8s.cluster import EmulatedCluster
from tests.harness.k8s.kinds import BUILTINS, Kind, Obj, ResKey, load_crds
from tests.harness.k8s.messages import BLOCKING, FieldError, aggregate, go_json, go_numbers, go_quote
from tests.harness.k8s.patches import merge_patch
from tests.harness.k8s.schema import apply_defaults, prune
from tests.harness.k8s.selectors import field_selector, label_selector
from tests.harness.k8s.server import VERBS, ApiServer, Fault, verb
from tests.harness.k8s.status import ApiError, invalid
from tests.harness.k8s.store import EVENT_LOG, Store, now_stamp
from tests.harness.k8s.watch import Watcher, iter_events

__all__ = [
    "BLOCKING",
    "BUILTINS",
    "EVENT_LOG",
    "NOT_CHECKED",
    "VERBS",
    "ApiError",
    "ApiServer",
    "EmulatedCluster",
    "Fault",
    "FieldError",
    "Kind",
    "Obj",
    "ResKey",
    "Store",
    "Watcher",
    "admit",
    "aggregate",
    "apply_defaults",
    "check",
    "field_selector",
    "go_json",
    "go_numbers",
    "go_quote",
    "invalid",
    "iter_events",
    "label_selector",
    "load_crds",
    "merge_patch",
    "now_stamp",
    "prune",
    "validate",
    "verb",
]
