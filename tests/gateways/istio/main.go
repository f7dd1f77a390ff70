// Command istio-validate judges a RequestAuthentication with Istio's own code, as istiod's
// validating admission webhook (istiod's /validate endpoint) would.
//
//	istio-validate OBJECT_JSON_FILE
//
// OBJECT_JSON_FILE holds one RequestAuthentication as `kubectl get requestauthentication X -o json`
// prints it (security.istio.io/v1 or v1beta1). The program
//
//  1. parses its `spec` strictly with protojson into istio.io/api's security/v1beta1
//     RequestAuthentication (unknown fields are a parse error, exit 2: the webhook itself would
//     retry leniently and drop them, the API server's structural schema would prune them);
//  2. sends the object, inside an admission.k8s.io/v1 AdmissionReview, to istiod's own webhook
//     handler (istio.io/istio/pkg/webhooks/validation/server, registered on a ServeMux with the
//     schemas istiod gives it, collections.PilotGatewayAPI()), and takes its answer as the verdict;
//  3. repeats the handler's steps (crd.ConvertObject, then the schema's ValidateConfig, which is
//     validation.ValidateRequestAuthentication) to list the errors one by one, and checks that
//     both agree;
//  4. for each jwtRule with inline jwks, counts the keys that Istio's JWKS parser
//     (github.com/lestrrat-go/jwx/jwk, as validateJwtRule calls it) reads.
//
// It prints one JSON line {"valid", "errors", "warnings", "keys"} and exits 0 when valid, 1 when
// invalid, 2 on a usage or parse error. "keys" has one entry per jwtRule whose jwks is set, in
// order: the number of keys parsed, or null where the JWKS did not parse.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	multierror "github.com/hashicorp/go-multierror"
	"github.com/lestrrat-go/jwx/jwk"
	"google.golang.org/protobuf/encoding/protojson"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	securityv1beta1 "istio.io/api/security/v1beta1"
	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/config/schema/resource"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/webhooks/validation/server"
)

type result struct {
	Valid    bool     `json:"valid"`
	Errors   []string `json:"errors"`
	Warnings []string `json:"warnings"`
	Keys     []*int   `json:"keys"`
}

func usage(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "istio-validate: "+format+"\n", a...)
	os.Exit(2)
}

// flatten lists the errors inside (possibly nested) hashicorp multierrors, as istiod's
// toKubeWarnings lists warnings.
func flatten(err error) []string {
	out := []string{}
	if err == nil {
		return out
	}
	var me *multierror.Error
	if errors.As(err, &me) && me != nil {
		for _, e := range me.Errors {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return append(out, err.Error())
}

// webhook sends the object to istiod's validation webhook handler and returns its response.
func webhook(raw []byte, name, namespace string, gvk metav1.GroupVersionKind) (*admissionv1.AdmissionResponse, error) {
	mux := http.NewServeMux()
	if _, err := server.New(server.Options{
		Schemas:      collections.PilotGatewayAPI(), // as pilot/pkg/bootstrap/validation.go
		DomainSuffix: constants.DefaultClusterLocalDomain,
		Mux:          mux,
	}); err != nil {
		return nil, err
	}
	plural := "requestauthentications"
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "istio-validate",
			Kind:      gvk,
			Resource:  metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: plural},
			Name:      name,
			Namespace: namespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		return nil, err
	}
	request := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
	request.Header.Set("Content-Type", "application/json")
	recorder := httptest.NewRecorder()
	mux.ServeHTTP(recorder, request)
	if recorder.Code != http.StatusOK {
		return nil, fmt.Errorf("webhook answered HTTP %d: %s", recorder.Code, recorder.Body.String())
	}
	var answer admissionv1.AdmissionReview
	if err := json.Unmarshal(recorder.Body.Bytes(), &answer); err != nil {
		return nil, fmt.Errorf("webhook answer: %v", err)
	}
	if answer.Response == nil {
		return nil, errors.New("webhook answer has no response")
	}
	return answer.Response, nil
}

func main() {
	if len(os.Args) != 2 {
		usage("usage: istio-validate OBJECT_JSON_FILE")
	}
	// istiod's scopes log at info to stderr; keep stderr for this program's own messages.
	for _, scope := range istiolog.Scopes() {
		scope.SetOutputLevel(istiolog.NoneLevel)
	}

	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		usage("%v", err)
	}

	// 1. The object, and a strict parse of its spec.
	var top struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Spec       json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		usage("%s: not a JSON object: %v", os.Args[1], err)
	}
	var obj crd.IstioKind
	if err := json.Unmarshal(raw, &obj); err != nil {
		usage("%s: not a Kubernetes object: %v", os.Args[1], err)
	}
	gvk := obj.GroupVersionKind()
	if gvk.Group != "security.istio.io" || gvk.Kind != "RequestAuthentication" {
		usage("%s: want a security.istio.io RequestAuthentication, got %s %s", os.Args[1], top.APIVersion, top.Kind)
	}
	if len(top.Spec) == 0 || bytes.Equal(top.Spec, []byte("null")) {
		usage("%s: no spec", os.Args[1])
	}
	strict := protojson.UnmarshalOptions{DiscardUnknown: false}
	if err := strict.Unmarshal(top.Spec, &securityv1beta1.RequestAuthentication{}); err != nil {
		usage("%s: spec is not an istio.security.v1beta1.RequestAuthentication: %v", os.Args[1], err)
	}

	// 2. istiod's webhook handler: the verdict and the warnings.
	response, err := webhook(raw, obj.Name, obj.Namespace, metav1.GroupVersionKind{
		Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind,
	})
	if err != nil {
		usage("%v", err)
	}

	// 3. The handler's own steps, for the errors one by one.
	schema, found := collections.PilotGatewayAPI().FindByGroupKind(resource.FromKubernetesGVK(&gvk))
	if !found {
		usage("istiod's schemas have no %v", gvk)
	}
	converted, err := crd.ConvertObject(schema, &obj, constants.DefaultClusterLocalDomain)
	if err != nil {
		usage("converting %s: %v", os.Args[1], err)
	}
	warnings, invalid := schema.ValidateConfig(*converted)

	out := result{Valid: response.Allowed, Errors: flatten(invalid), Warnings: response.Warnings, Keys: []*int{}}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	if !response.Allowed && invalid == nil {
		// Rejected by a step after validation (the top-level field check).
		message := "rejected"
		if response.Result != nil {
			message = response.Result.Message
		}
		out.Errors = []string{message}
	}
	if response.Allowed && invalid != nil {
		usage("istiod's webhook allowed what ValidateConfig rejects: %v", invalid)
	}
	if got, want := len(out.Warnings), len(flatten(warnings)); response.Allowed && got != want {
		usage("istiod's webhook gave %d warnings, ValidateConfig %d", got, want)
	}

	// 4. The keys Istio's JWKS parser reads from each inline jwks.
	spec, ok := converted.Spec.(*securityv1beta1.RequestAuthentication)
	if !ok {
		usage("converted spec is a %T", converted.Spec)
	}
	for _, rule := range spec.GetJwtRules() {
		if rule.GetJwks() == "" {
			continue
		}
		if set, err := jwk.Parse([]byte(rule.GetJwks())); err == nil {
			n := set.Len()
			out.Keys = append(out.Keys, &n)
		} else {
			out.Keys = append(out.Keys, nil)
		}
	}

	line, err := json.Marshal(out)
	if err != nil {
		usage("%v", err)
	}
	fmt.Println(string(line))
	if !out.Valid {
		os.Exit(1)
	}
}
