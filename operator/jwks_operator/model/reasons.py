"""Every reason the operator sets on a condition, what it means and what to do (pure data).

README.md's Troubleshooting table is this list; tests/unit/test_troubleshooting.py fails when the two
differ, and when the code sets a reason this list lacks (or this list names one the code never sets).
Where a reason shows: `Ready`, `Degraded` and `InsecureConfig` are the JwtSecret's conditions,
`OutputReady` is each gateway output's, in `status.outputs[]`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reason:
    name: str
    on: str  # the condition(s), with the status they take
    means: str
    todo: str


STUCK = "[A JwtSecret stuck in Terminating](#a-jwtsecret-stuck-in-terminating)"
LOCAL = "[Why a local provider needs two settings](#why-a-local-provider-needs-two-settings)"

REASONS: tuple[Reason, ...] = (
    Reason(
        "KeysPublished",
        "Ready=True",
        "Valid keys are published to the object `status.target` names; the message counts them, and says "
        "when the latest update failed (`Degraded` then says why).",
        "Nothing.",
    ),
    Reason("AsExpected", "Degraded=False, InsecureConfig=False", "Nothing is wrong.", "Nothing."),
    Reason(
        "KeysRejected",
        "Degraded=True",
        "Some keys of the source were refused (too weak, hostile, with private members, a duplicate "
        "`kid`...); the valid ones are published. `status.rejectedKeys` gives each one's reason.",
        "Fix or drop those keys at the provider or in `spec.static`.",
    ),
    Reason(
        "OutputFailed",
        "Degraded=True",
        "A gateway output of `spec.outputs` was not written; the ConfigMap still serves the keys.",
        "Read that output's `OutputReady` in `status.outputs` (its reasons are below).",
    ),
    Reason(
        "ReleaseFailed",
        "Degraded=True",
        "The JwtSecret is being deleted and its entries could not yet be taken out of its gateway outputs: "
        "the finalizer `jwks.dev/release-outputs` holds the deletion, retried with backoff. The message "
        "says which output and why.",
        f"Fix what the message names (often RBAC), or remove the finalizer by hand: {STUCK}.",
    ),
    Reason(
        "InvalidSpec",
        "Ready=False, Degraded=True",
        "The spec cannot be used; the message names the field. Nothing is fetched or published for it.",
        "Fix that field (`kubectl explain jwtsecret.spec.FIELD`).",
    ),
    Reason(
        "AudienceRequired",
        "Ready=False, Degraded=True",
        "`jwkUrl` is a JWK Set its provider signs every customer's tokens with (Firebase, Google, Apple, "
        "GitHub Actions, GitLab.com, Microsoft Entra ID) and `spec.audiences` is empty: anyone's tokens "
        "would verify. Nothing is fetched.",
        "Set `spec.audiences` (or `spec.allowMissingAudience: true` to accept the risk).",
    ),
    Reason(
        "NoValidKeys",
        "Degraded=True (Ready=False until keys were published)",
        "The source holds no usable key (none, or every one rejected); the keys last published stay.",
        "See `status.rejectedKeys`; fix the provider's JWK Set or `spec.static`.",
    ),
    Reason(
        "SecretNotAvailable",
        "Degraded=True (Ready=False until keys were published)",
        "`spec.static.secretRef` names a Secret this JwtSecret may not use: absent, without the key, "
        "shorter than 32 bytes, or not opted in.",
        "Create it with the key (32 bytes or more) and the annotation `jwks.dev/allow-jwtsecrets: NAME`.",
    ),
    Reason(
        "FetchFailed",
        "Degraded=True (Ready=False until keys were published)",
        "The JWK URL could not be fetched or read: DNS, connection, TLS, timeout, an HTTP error, a body "
        "that is not a JWK Set, a refused address or redirect. Retried with backoff; the keys last "
        "published stay.",
        f"Read the message; for a provider in your network see {LOCAL}; for a private CA, "
        "`spec.caBundleRef`.",
    ),
    Reason(
        "Stale",
        "Ready=False, Degraded=True",
        "Refreshes have failed for `spec.refresh.staleAfter` past the keys' refresh time; the keys stay "
        "published.",
        "Fix the fetch (the message says its last error), or raise `spec.refresh.staleAfter`.",
    ),
    Reason(
        "TargetConflict",
        "Degraded=True, OutputReady=False",
        "The object to write is not this JwtSecret's: made by someone else or another JwtSecret, shared "
        "where the spec does not say so (or the reverse), a shared target that does not list it, a `kid` "
        "naming other key material than another contributor's, or one that kept changing while written.",
        "Pick another `spec.target.name`; to join a shared target, have its creator list this JwtSecret in "
        "`spec.target.allow`; rename a colliding `kid`.",
    ),
    Reason(
        "OutputTooLarge",
        "Degraded=True, OutputReady=False",
        "The object would exceed the 1 MiB the API server stores: nothing was written, the keys last "
        "published stay.",
        "Publish fewer keys or issuers.",
    ),
    Reason(
        "ApiError",
        "Degraded=True, OutputReady=False",
        "A Kubernetes API call failed (5xx, 429, a timeout, a refused request); retried with backoff. The "
        "message names the call.",
        "Check the API server; HTTP 403 means the operator's RBAC lacks a rule (see the chart's values).",
    ),
    Reason(
        "UnexpectedError",
        "Degraded=True, OutputReady=False",
        "An error no step expects: a bug, or an object edited beyond what the operator reads. Retried.",
        "See the operator's log (it has the traceback) and report it.",
    ),
    Reason(
        "InsecureHttp",
        "InsecureConfig=True",
        "`jwkUrl` is `http://` (allowed by `spec.allowInsecureHttp`): keys fetched in clear text can be "
        f"swapped on the way ({LOCAL}).",
        "Serve the JWK Set over https.",
    ),
    Reason(
        "AudienceMissing",
        "InsecureConfig=True",
        "`spec.audiences` is empty: tokens issued to any audience of the issuer verify.",
        "Set `spec.audiences`.",
    ),
    Reason(
        "Written",
        "OutputReady=True",
        "The output holds the current keys; the message names its objects.",
        "Nothing.",
    ),
    Reason(
        "NotFound",
        "OutputReady=False",
        "The object the output fills does not exist (a SecurityPolicy, a KongConsumer, a Space Cloud "
        "project ConfigMap): the operator never creates it.",
        "Create it (the message says which).",
    ),
    Reason(
        "NotAllowed",
        "OutputReady=False",
        "The object's owner has not let this JwtSecret manage entries in it (a RequestAuthentication the "
        "operator made for another JwtSecret: its creator's `outputs[].istio.allow` does not list it).",
        'Annotate the object `jwks.dev/allow-jwtsecrets: NAME` (or `name/uid`, or `"*"`); for an '
        "operator-made RequestAuthentication, list it in the creator's `outputs[].istio.allow`.",
    ),
    Reason(
        "OutputConflict",
        "OutputReady=False",
        "Something not this JwtSecret's is in the way: an entry another JwtSecret or a person made (same "
        "issuer, provider, credential or `kid`), an object of that name the operator did not make, a Secret "
        "of another type. Left untouched.",
        "Remove or rename what the message names.",
    ),
    Reason(
        "KindNotInstalled",
        "OutputReady=False",
        "The cluster does not serve the output's kind: the gateway's CRD is not installed. It does not "
        "hold up the JwtSecret's deletion (a `KindNotInstalled` event says so).",
        "Install the gateway's CRDs, or drop the output.",
    ),
    Reason(
        "Forbidden",
        "OutputReady=False",
        "The operator's RBAC does not let it write the output's kind.",
        "Set `outputs.<gateway>.enabled` in the chart (or grant the rule).",
    ),
    Reason(
        "InvalidOutput",
        "OutputReady=False",
        "The spec exceeds the gateway's limits (Envoy Gateway: 8 audiences per provider, issuers of 253 "
        "characters, a provider name that is a qualified name).",
        "Do as the message says (e.g. set `outputs[].envoyGateway.provider`).",
    ),
    Reason(
        "TooManyProviders",
        "OutputReady=False",
        "The SecurityPolicy would hold more jwt providers than Envoy Gateway takes (16).",
        "Fewer issuers, or another SecurityPolicy.",
    ),
    Reason(
        "IssuerRequired",
        "OutputReady=False",
        "Istio's jwtRules need an issuer and `spec.issuers` is empty.",
        "Set `spec.issuers`.",
    ),
    Reason(
        "SecretNotAllowed",
        "OutputReady=False",
        "The output would expose HMAC keys (Istio's inline jwks, Envoy Gateway's ConfigMap, Space Cloud's "
        "project ConfigMap without `allowHmac`).",
        "Use asymmetric keys, or for Space Cloud set `allowHmac: true` on the output.",
    ),
    Reason(
        "HmacExportNotAllowed",
        "OutputReady=False",
        "Space Cloud's output has `allowHmac: true`, but the Secret `spec.static.secretRef` names does not "
        "consent to its secret leaving Secrets; entries written before are taken out.",
        "The Secret's owner annotates it `jwks.dev/allow-hmac-export: NAME` (or `name/uid`, or `*`).",
    ),
    Reason(
        "MalformedObject",
        "OutputReady=False",
        "The output's object cannot be read (a `spec` replaced by a list, entries or "
        "`jwks.dev/managed-entries` of the wrong type): it is never written. A deletion gives up its "
        "release after 5 such attempts in a row (a `ReleaseAbandoned` event names what stayed).",
        "Repair or delete the object the message names.",
    ),
    Reason(
        "NoUsableKeys",
        "OutputReady=False",
        "None of the keys is one this gateway can verify (Kong, Space Cloud; Istio and Envoy Gateway take no "
        "Ed448 key); the message says why each was skipped.",
        "Publish a key type the gateway supports.",
    ),
    Reason(
        "InvalidKongConsumer",
        "OutputReady=False",
        "The KongConsumer's `credentials` is not a list of names.",
        "Fix the KongConsumer.",
    ),
    Reason(
        "InvalidProjectConfig",
        "OutputReady=False",
        "The Space Cloud project ConfigMap does not hold a project's JSON (an object whose secrets are a "
        "list of objects).",
        "Fix the project in Space Cloud.",
    ),
    Reason(
        "SecretsIgnored",
        "OutputReady=False",
        "The Space Cloud project has `secretSource: admin`, so it ignores its secrets: nothing was written.",
        'Set the project\'s `secretSource` to `""`.',
    ),
    Reason(
        "WrongNamespace",
        "OutputReady=False",
        "Space Cloud reads project ConfigMaps in one namespace only, and this JwtSecret is in another.",
        "Create the JwtSecret in Space Cloud's namespace.",
    ),
)
