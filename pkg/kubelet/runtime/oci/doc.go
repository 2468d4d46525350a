// Package oci is the "oci" runtime: containers isolated by runc (the OCI
// runtime spec's reference implementation, as containerd runs it: shim →
// runc), with root filesystems from the node's image store (pkg/image).
//
// # Why a runc binary
//
// Issue 5 allows libcontainer, a runc/crun binary or a remote CRI runtime.
// A runc binary keeps k1s one `go build` (no cgo namespace code linked in,
// no second daemon), runc is packaged by every distribution (Debian: runc
// 1.1.5), and the host runtime's shim already does what containerd's shim
// does (stdio, CRI logs, exit status, surviving the agent): the shim's
// payload is simply `runc run`.
//
// # How
//
// The runtime composes a host runtime (process.Runtime, in RootDir/shims):
//
//   - A sandbox is the host runtime's sandbox (same id) plus a directory
//     sandboxes/<id>/ with the pod's hostname, hosts, resolv.conf (from
//     the sandbox DNS config, else the host's) and a 64 MiB tmpfs for
//     /dev/shm shared by its containers.
//   - Pod network (Options.Network, a pkg/network Manager; nil: every
//     sandbox in the host network): a sandbox of a pod that is not
//     hostNetwork gets a network namespace pinned at
//     <network state>/netns/<id>, a veth on the node bridge (eth0 in the
//     pod), the next free IP of the node's pod CIDR and its hostPorts as
//     DNAT rules; sandbox.json records the netns path and the IP, which
//     PodSandboxStatus / ListPodSandboxes report (hostNetwork sandboxes:
//     HostIP) and /etc/hosts names. Every container of the pod joins the
//     namespace. The kubelet hands the node's pod CIDR over with
//     SetPodCIDR; before that such sandboxes fail with "network is not
//     ready". The network stays while the sandbox is stopped and goes
//     with RemovePodSandbox (or a failed RunPodSandbox); New finishes
//     half-done removals and tears down networks of sandboxes that are
//     gone (Manager.GC).
//   - CreateContainer leases the image, mounts containers/<id>/rootfs as an
//     overlay of the image's unpacked layers with upper/ and work/, writes
//     config.json (runtime-spec: mount, UTS, IPC, PID namespaces, the
//     sandbox's network namespace or the host network, /proc /dev
//     /dev/pts /dev/shm /dev/mqueue /sys and /sys/fs/cgroup, the
//     sandbox's /etc files, volumes bound at their
//     ContainerPath (SubPath joined, ro when ReadOnly), Kubernetes'
//     command/args over Entrypoint/Cmd, image Env + HOSTNAME + container
//     Env, WorkingDir, User (names from the image's /etc/passwd), docker's
//     default capabilities, masked and read-only /proc paths, memory/CPU/pids
//     limits in linux.resources, cgroup <CgroupParent>/<id>), and creates a
//     host-runtime container whose command is `runc --root RootDir/runc run
//     --bundle containers/<id> <id>`. Our container ids map to the host
//     runtime's (container.json); events are translated.
//   - StartContainer checks that the executable exists in the rootfs (or a
//     volume) — a missing one is StartError / exit 128 as containerd
//     reports it, since runc would fail only after the shim started — then
//     starts the shim and waits until runc has created the container.
//   - StopContainer: `runc kill TERM` (PID 1 of the PID namespace: ignored
//     without a handler), after the timeout `runc kill --all KILL`; exit
//     codes are runc's (128+N when killed by N). Remove: `runc delete
//     --force`, unmount, release the lease, delete the bundle.
//   - ExecSync / Exec: `runc exec` (the container's env, cwd and user);
//     timeouts kill the exec'd process by its --pid-file. TTY execs pass a
//     process.json with the initial console size; our pty is runc's
//     controlling terminal so resizes reach it as SIGWINCH.
//   - Attach, logs, ReopenContainerLog and re-adoption after an agent
//     restart are the host runtime's, unchanged.
//   - PortForward dials localhost:port inside the pod's network namespace
//     (a socket made on a thread in the namespace), so servers bound to
//     the pod's 127.0.0.1 are reached; hostNetwork sandboxes dial the
//     host's localhost.
//   - ContainerStats read the container's cgroup (v1: memory.usage_in_bytes
//   - total_inactive_file, total_rss, cpuacct.usage; v2: memory.current,
//     memory.stat, cpu.stat).
//
// # Not yet
//
// IPv4 pod networks only, no NetworkPolicy, no bandwidth limits, hostPorts
// not on 127.0.0.1, no namespaces shared between a pod's containers
// (IPC/PID: shareProcessNamespace), no AppArmor / SELinux / procMount /
// user namespaces, no node-allocatable (kubepods) limits, no image GC.
// runc's own errors after the start (rare: mount failures) go to the
// container's log.
//
// # Cgroups, OOM and security (cgroups.go, seccomp.go)
//
// Pod cgroups as the kubelet's cgroupfs driver lays them out:
// <CgroupParent>/pod<uid> for Guaranteed pods, burstable/pod<uid> and
// besteffort/pod<uid> for the others, containers inside; pod limits from
// upstream's rules (cpu shares from requests, quota and memory limit when
// every container has one), v1 and v2. runc runs with --keep so the
// container's cgroup outlives its exit long enough to read the OOM-kill
// counter: a container killed by the OOM killer is Exited with reason
// OOMKilled, exit code 137. Security context: runAsUser/Group,
// runAsNonRoot (upstream's messages, CreateContainerConfigError),
// capabilities add/drop (ALL), privileged, allowPrivilegeEscalation
// (NoNewPrivileges), readOnlyRootFilesystem, fsGroup and
// supplementalGroups; seccomp RuntimeDefault is a deny list of the
// dangerous syscalls (kexec, modules, mount/unshare/setns, ...), Localhost
// profiles from <kubelet root>/seccomp.
package oci
