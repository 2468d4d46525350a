// Package metrics is k1s's metrics-server: it serves metrics.k8s.io/v1beta1
// (NodeMetrics and PodMetrics) behind kube-apiserver's aggregator, so that
// `kubectl top node|pod` work as with metrics-server.
//
// It works the way metrics-server does, in-process and small:
//
//   - a Collector scrapes every Ready node's kubelet through the API
//     server's node proxy (/api/v1/nodes/<node>/proxy/metrics/resource)
//     every ScrapeInterval and hands each batch to a Store;
//   - the Store keeps the last two points of every node and container;
//     CPU usage is the rate of cumulative CPU between them (the first
//     result appears after the second scrape), memory the last working set;
//   - an API handler serves discovery, lists and gets of nodes and pods
//     (label and metadata.name field selectors, Table output for
//     `kubectl get`), to the aggregator only: requests must carry its
//     front-proxy client certificate, the user comes from X-Remote-User;
//   - a registrar keeps the Service kube-system/metrics-server, its
//     EndpointSlice and Endpoints (this server's address) and the
//     APIService v1beta1.metrics.k8s.io in place, as metrics-server's
//     manifests do.
package metrics
