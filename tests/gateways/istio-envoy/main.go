// Command istio-envoy prints the HTTP filters istiod would push to a sidecar's inbound listener for
// the given RequestAuthentications and AuthorizationPolicies, as Envoy configuration (JSON).
//
//	istio-envoy -namespace NS [-labels k=v,...] OBJECT_JSON_FILE...
//
// Each OBJECT_JSON_FILE holds one security.istio.io RequestAuthentication or AuthorizationPolicy as
// `kubectl get ... -o json` prints it. The program
//
//  1. converts each object as istiod's config controller does (crd.ConvertObject) and validates it
//     with the schema's own validation (an invalid object: exit 1, as the webhook would refuse it);
//  2. builds istiod's own configuration generator over them (pilot/pkg/networking/core's
//     ConfigGenTest: the in-memory config store, service registries and PushContext istio's own
//     tests use) and a sidecar proxy of that namespace and those labels (no service: its inbound
//     traffic takes the virtualInbound listener's passthrough filter chains);
//  3. generates the proxy's listeners (ConfigGeneratorImpl.BuildListeners, what LDS pushes) and
//     takes, from every HTTP filter chain of the virtualInbound listener, the http_filters that
//     upstream Envoy knows and that enforce authentication and authorization:
//     envoy.filters.http.jwt_authn (authn.PolicyApplier.JwtFilter, i.e. convertToEnvoyJwtConfig
//     with JwtKeyResolver.BuildLocalJwks for inline jwks) and envoy.filters.http.rbac (the
//     authz builder's). Every HTTP filter chain must carry the same ones.
//
// It prints one JSON line {"http_filters": [...], "others": [...]} (filters in istiod's order, with
// proto field names; "others": the names of the filters left out, e.g. Istio's own
// istio.metadata_exchange that upstream Envoy lacks) and exits 0; 1 for an invalid object; 2 on a
// usage or parse error.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/core"
	authnmodel "istio.io/istio/pilot/pkg/security/model"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/constants"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/config/schema/resource"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/test"
	"istio.io/istio/pkg/wellknown"
)

// kept are the HTTP filters taken into the output: upstream Envoy's authentication and RBAC filters.
var kept = map[string]bool{authnmodel.EnvoyJwtFilterName: true, wellknown.HTTPRoleBasedAccessControl: true}

func usage(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "istio-envoy: "+format+"\n", a...)
	os.Exit(2)
}

func invalid(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "istio-envoy: "+format+"\n", a...)
	os.Exit(1)
}

// load converts one object file as istiod's config controller does, and validates it.
func load(path string) config.Config {
	raw, err := os.ReadFile(path)
	if err != nil {
		usage("%v", err)
	}
	var obj crd.IstioKind
	if err := json.Unmarshal(raw, &obj); err != nil {
		usage("%s: not a Kubernetes object: %v", path, err)
	}
	gvk := obj.GroupVersionKind()
	if gvk.Group != "security.istio.io" || (gvk.Kind != "RequestAuthentication" && gvk.Kind != "AuthorizationPolicy") {
		usage("%s: want a security.istio.io RequestAuthentication or AuthorizationPolicy, got %s %s", path, obj.APIVersion, obj.Kind)
	}
	schema, found := collections.PilotGatewayAPI().FindByGroupKind(resource.FromKubernetesGVK(&gvk))
	if !found {
		usage("istiod's schemas have no %v", gvk)
	}
	converted, err := crd.ConvertObject(schema, &obj, constants.DefaultClusterLocalDomain)
	if err != nil {
		usage("converting %s: %v", path, err)
	}
	if _, err := schema.ValidateConfig(*converted); err != nil {
		invalid("%s: %s %s/%s is invalid: %v", path, gvk.Kind, converted.Namespace, converted.Name, err)
	}
	return *converted
}

// filters are the HTTP filters of one filter chain, if it is an HTTP one.
func filters(chain *listener.FilterChain) ([]*hcm.HttpFilter, bool) {
	for _, filter := range chain.GetFilters() {
		if filter.GetName() != wellknown.HTTPConnectionManager {
			continue
		}
		manager := &hcm.HttpConnectionManager{}
		if err := filter.GetTypedConfig().UnmarshalTo(manager); err != nil {
			usage("an HTTP connection manager that does not parse: %v", err)
		}
		return manager.GetHttpFilters(), true
	}
	return nil, false
}

func main() {
	namespace := flag.String("namespace", "", "the workload's namespace")
	labelList := flag.String("labels", "", "the workload's labels, k=v,...")
	flag.Parse()
	if *namespace == "" || flag.NArg() == 0 {
		usage("usage: istio-envoy -namespace NS [-labels k=v,...] OBJECT_JSON_FILE...")
	}
	for _, scope := range istiolog.Scopes() {
		scope.SetOutputLevel(istiolog.NoneLevel)
	}
	labels := map[string]string{}
	for _, pair := range strings.Split(*labelList, ",") {
		if pair == "" {
			continue
		}
		key, value, ok := strings.Cut(pair, "=")
		if !ok || key == "" {
			usage("-labels: %q is not k=v", pair)
		}
		labels[key] = value
	}
	configs := []config.Config{}
	for _, path := range flag.Args() {
		configs = append(configs, load(path))
	}

	var chosen []*hcm.HttpFilter
	others := []string{}
	err := test.Wrap(func(t test.Failer) {
		generator := core.NewConfigGenTest(t, core.TestOptions{Configs: configs})
		proxy := generator.SetupProxy(&model.Proxy{
			Labels:          labels,
			ConfigNamespace: *namespace,
			Metadata:        &model.NodeMetadata{Namespace: *namespace, Labels: labels},
		})
		chains := 0
		for _, l := range generator.Listeners(proxy) {
			if l.GetName() != model.VirtualInboundListenerName {
				continue
			}
			for _, chain := range l.GetFilterChains() {
				all, isHTTP := filters(chain)
				if !isHTTP {
					continue
				}
				chains++
				mine, rest := []*hcm.HttpFilter{}, []string{}
				for _, f := range all {
					if kept[f.GetName()] {
						mine = append(mine, f)
					} else {
						rest = append(rest, f.GetName())
					}
				}
				if chains == 1 {
					chosen, others = mine, rest
				} else if !sameFilters(chosen, mine) {
					t.Fatalf("filter chain %q has other authn/authz filters than the first", chain.GetName())
				}
			}
		}
		if chains == 0 {
			t.Fatalf("no HTTP filter chain on listener %s", model.VirtualInboundListenerName)
		}
	})
	if err != nil {
		usage("generating the configuration: %v", err)
	}

	out := struct {
		HTTPFilters []json.RawMessage `json:"http_filters"`
		Others      []string          `json:"others"`
	}{HTTPFilters: []json.RawMessage{}, Others: others}
	marshal := protojson.MarshalOptions{UseProtoNames: true}
	for _, f := range chosen {
		text, err := marshal.Marshal(f)
		if err != nil {
			usage("%v", err)
		}
		out.HTTPFilters = append(out.HTTPFilters, text)
	}
	line, err := json.Marshal(out)
	if err != nil {
		usage("%v", err)
	}
	fmt.Println(string(line))
}

func sameFilters(a, b []*hcm.HttpFilter) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
