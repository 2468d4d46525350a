// Package process is the "host" runtime: it runs every container as a
// supervised process group on the host, with the host's network and
// filesystem. It only runs processes and reports facts; phases, back-off and
// probes live in the kubelet.
//
// # Layout under Options.RootDir
//
//	sandboxes/<id>/sandbox.json   pod sandbox record (config, state)
//	containers/<id>/container.json container record, written once at create
//	containers/<id>/spec.json      what the shim runs (argv, env, dir, log path)
//	containers/<id>/shim.spec      the same for the C shim (NUL-separated
//	                               fields, see encodeShimSpec), rewritten
//	                               before every shim start
//	containers/<id>/state.json     written atomically by the shim: pids, start,
//	                               exit code / signal / finish time
//	containers/<id>/rootfs/        default working directory (a fresh one per
//	                               container attempt, like a writable layer)
//	containers/<id>/attach.sock    the shim's attach socket (Stdin or TTY):
//	                               stdin of the main process, terminal resizes
//	containers/<id>/shim.log       the shim's own diagnostics
//
// # The shim
//
// Every started container is held by a shim: the k1s binary started again
// as `k1s shim --dir <container dir> --report-fd 3`, in its own session so
// that it survives the agent being killed. The shim starts the process in
// its own process group, copies stdout/stderr into the container's LogPath
// in the CRI log format (reopening it on SIGUSR1), keeps stdin open when
// asked (attach), reaps orphans (it is a child subreaper), ignores SIGTERM,
// SIGINT and SIGHUP, and records the start (state.json, then the same JSON
// on the report fd) and the exit (state.json) of the container. When the
// main process exits the shim SIGKILLs what is left of its process group
// and of its children, as the kernel does to a container when its PID 1
// exits, waits up to 2s for them to be reaped and up to 2s more for the
// output to end, then writes the exit.
//
// The shim is written in C (shim.c) and runs before the Go runtime: k1s
// links the API server, kubectl and the controllers, and starting the Go
// runtime with its thousands of packages would cost every shim ~14 MB of
// private memory. A constructor (__attribute__((constructor)), as runc's
// nsenter) runs when any process of the binary starts; when the process is
// a shim, recognised by K1S_SHIM=1 in its environment (set by the runtime
// for shims only) and "shim" as its first argument, it does the whole job
// in one thread (a poll loop, signals on a signalfd) and calls _exit, so the
// Go runtime never starts: a shim has ~130 kB of private memory. Every
// other process returns from the constructor at once. The C shim reads
// shim.spec, not spec.json. `k1s shim ...` typed by hand (no K1S_SHIM) gets
// to ShimMain, which executes the binary again with K1S_SHIM=1. In builds
// without cgo ShimMain is the same shim in Go (shim_nocgo.go), which reads
// spec.json; copyLog in crilog.go is that shim's log writer and the
// reference the C shim is tested against. Any binary that links this
// package and starts shims (tests too) gets the constructor; its main only
// has to call ShimMain for the "shim" subcommand.
//
// A restarted agent re-adopts running containers from the state files
// without restarting them. If a shim vanished while its container was
// running, the container is reported Exited the way containerd reports a
// container whose shim died: if the process was still alive it is killed and
// reported with exit code 137 (reason "Error"); if nothing is known of its
// end it is reported with exit code 255 and reason "Unknown" (containerd's
// unknownExitCode / unknownExitReason). "ContainerStatusUnknown" is the
// kubelet's own reason for a container the runtime no longer knows; runtimes
// never report it.
//
// # Streams
//
// Attach follows the container log from its current end (so it shows new
// output only, like docker attach) and sends stdin through the shim's
// attach socket; for StdinOnce containers the end of the first attach's
// input closes the process's stdin. TTY containers run on a pseudo-terminal
// held by the shim (output logged as stdout, resizes over the socket).
// Exec and ExecSync run a new process with the container's environment and
// working directory, as a child of the agent; Exec with TTY uses a
// pseudo-terminal. None of them closes the caller's streams.
// ReopenContainerLog (beyond the interface) makes the shim reopen LogPath
// after a log rotator renamed it.
//
// # Facts reported the way containerd reports them
//
//   - Terminated reason "Completed" for exit 0, "Error" otherwise. A process
//     killed by signal N exits with 128+N (137 for SIGKILL, 143 for SIGTERM)
//     and Signal N.
//   - A start failure (executable not found, bad working dir) leaves the
//     container Exited with exit code 128 and reason "StartError", and
//     StartContainer returns the error.
//   - Log lines: "<RFC3339Nano time> stdout|stderr F|P <content>"; lines
//     longer than 16 KiB are split into P chunks; a last line without a
//     trailing newline is written as P; "\r\n" and "\n" are stripped.
//
// # Stop semantics (PID 1)
//
// In a container the main process is PID 1 of its PID namespace, and the
// kernel drops signals for which PID 1 has no handler. So StopContainer sends
// SIGTERM only to the main process and only if it catches SIGTERM (read from
// /proc/<pid>/status SigCgt), waits for the timeout, then SIGKILLs the whole
// process group. `sh -c 'sleep 3600'` therefore waits out its grace period
// and ends with 137, exactly as on containerd. Options.SignalProcessGroup
// switches to plain host semantics (SIGTERM to the whole group).
//
// # What the host runtime cannot do, and what it does instead
//
//   - Images: every image is treated as present. ImageStatus / PullImage
//     return Ref = ID = the normalised reference ("busybox" →
//     "docker.io/library/busybox:latest"; digests are kept). Size 0.
//   - Command: there is no image entrypoint, so Command and Args both empty
//     is runtime.ErrInvalidConfig. The executable is looked up in the PATH of
//     the container's environment, then in the host's PATH.
//   - Environment: the process gets only PATH (the host's), HOME, HOSTNAME
//     (the sandbox hostname, else the host name), TERM=xterm for TTY
//     containers, one K1S_VOLUME_* variable per mount, then the container's
//     Env (which wins).
//   - Volumes cannot be placed at their mountPath. Each mount is exposed as
//     K1S_VOLUME_<NAME>=<host path> (name upper-cased, every character other
//     than A-Z 0-9 replaced by "_"; SubPath is joined to the host path).
//   - Network: host network only; the sandbox IP is Options.HostIP.
//     PortForward dials localhost.
//   - Working dir: Config.WorkingDir if set (created if missing), else a
//     fresh containers/<id>/rootfs directory.
//   - Resources, users and security contexts are not enforced.
//   - OOMKilled is never reported (no cgroup).
//   - Stats come from /proc: CPU is utime+stime (+ reaped children) of the
//     process group, RSS is the sum of RssAnon, working set the sum of VmRSS.
package process
