// Package proxy is the Service data path of a node: kube-proxy's job, done
// in the kernel with nftables (github.com/google/nftables, no nft binary),
// so no byte of Service traffic is copied in user space.
//
// A Proxier watches Services and EndpointSlices and writes one nftables
// table (family ip, Options.TableName, default "k1s-proxy"), whole, in one
// netlink batch after every change (at most every MinSyncInterval) and
// every SyncPeriod. It touches no other table. The layout is kube-proxy's
// nftables mode, smaller:
//
//	nat-prerouting, nat-output  (nat, dstnat)  → services
//	nat-postrouting             (nat, srcnat)  → masquerading
//	filter-input/forward/output (filter)       ct state new → *-endpoints-check, cluster-ips-check
//
//	services: ip daddr . meta l4proto . th dport vmap @service-ips
//	          fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
//	service-ips:       ClusterIP . proto . port → goto service-<svc>;
//	                   LoadBalancer ingress / externalIP . proto . port → goto external-<svc>
//	service-nodeports: proto . nodePort → goto external-<svc>
//	external-<svc>:    mark for masquerade, goto service-<svc> (externalTrafficPolicy Local: local-<svc>)
//	service-<svc>:     [ip saddr @affinity-<ep> goto endpoint-<ep>]…
//	                   numgen random mod N == 0 goto endpoint-<ep1>; numgen random mod N-1 == 0 goto endpoint-<ep2>; …; goto endpoint-<epN>
//	endpoint-<ep>:     [masquerade marks] [update @affinity-<ep> { ip saddr }] dnat to ip:port
//	no-endpoint-services / no-endpoint-nodeports: → reject (ICMP port unreachable: "connection refused")
//	cluster-ips-check: any other port of a ClusterIP → reject
//
// Only ready endpoints serve (conditions.ready true or unset; terminating
// endpoints are not ready). Unlike kube-proxy, serving-but-terminating
// endpoints are never used, even when no ready one is left: then the
// Service refuses connections. A host-runtime pod's endpoint is the node's
// own address; DNAT to it delivers locally from prerouting and output alike.
//
// Masquerading (mark 0x4000, then masquerade fully-random in srcnat):
//   - ClusterIP traffic from outside ClusterCIDR and not from the node itself;
//   - the node's own connections to endpoints on other nodes;
//   - NodePort, LoadBalancer and external-IP traffic (externalTrafficPolicy
//     Cluster; Local keeps the client's address and uses local endpoints);
//   - hairpin: a pod reaching itself through its Service;
//   - with Options.BridgeNetfilter false: pods (LocalPodCIDR) reaching an
//     endpoint on this node, so that the reply, which would otherwise cross
//     the bridge straight back and never be un-NATed, goes through the node.
//
// The node's own connections to local endpoints keep their address: a local
// endpoint replies through the node anyway, and masquerading caps a node's
// connections to one endpoint at 64k source ports per conntrack TIME_WAIT
// (120 s), about 500 per second, which the benchmark hit.
//
// Each write empties the table's rules (one message), adds missing chains,
// refills the maps (at most 100 elements per message: an element list is
// one netlink attribute, 64 KiB at most) and adds every rule, in one batch,
// rather than recreating the table, so ClientIP affinity sets keep their clients; the first write of a
// Proxier, and any write the kernel refuses, recreate it (delete and create
// in the same batch). Chains no longer wanted are flushed at once and
// deleted a second later (kernels before 6.2 need the delay). UDP conntrack
// entries to an endpoint that left its Service are deleted, as kube-proxy
// does, so a client's UDP flow follows the Service.
//
// Package servicelb gives LoadBalancer Services the nodes' addresses as
// ingress, as k3s's ServiceLB does; the proxy then serves them.
package proxy
