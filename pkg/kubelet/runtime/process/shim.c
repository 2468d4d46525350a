//go:build cgo

/*
 * The container shim of the host runtime, in C.
 *
 * Every started container is supervised by a shim: the k1s binary started
 * again as `k1s shim --dir <container dir> [--report-fd N]` with K1S_SHIM=1
 * in its environment (see shim_cgo.go and doc.go). k1s links the API server,
 * kubectl and the controllers, and initialising the Go runtime and its
 * thousands of packages costs ~14 MB of private memory per process. So the
 * constructor at the end of this file runs when the process starts, before
 * the Go runtime: if the process is a shim it does the whole shim job here,
 * in one thread, and calls _exit(); Go never starts. In any other process it
 * returns at once (one getenv).
 *
 * What the shim does, the same as the Go shim (shim_nocgo.go, used when k1s
 * is built without cgo):
 *   - reads <dir>/shim.spec (written by the runtime, format in shimspec.go),
 *   - starts the container process in its own process group (a new session
 *     on a pseudo-terminal for TTY containers), as a child subreaper,
 *   - copies its stdout and stderr into the container log in the CRI format
 *     ("<RFC3339Nano> stdout|stderr F|P <line>"), reopening the log on
 *     SIGUSR1, ignoring SIGTERM, SIGINT and SIGHUP,
 *   - serves <dir>/attach.sock (stdin and terminal resizes),
 *   - records the start in <dir>/state.json and on the report fd, and the
 *     exit (128+N for signal N) in state.json when the main process exits,
 *     after killing what is left of the container.
 *
 * Everything runs in a poll() loop; signals arrive on a signalfd. All fds
 * the shim opens are close-on-exec. Error strings are worded like Go's
 * (lower-case strerror) so that messages match those of the Go shim.
 */

#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* Keep in sync with shimspec.go and store.go. */
#define SHIM_ENV "K1S_SHIM"
#define SPEC_FILE "shim.spec"
#define SPEC_MAGIC "k1s-shim-spec 1"
#define STATE_FILE "state.json"
#define ATTACH_SOCKET "attach.sock"

#define EXIT_CODE_START 128   /* containerd's exit code for a start error */
#define EXIT_CODE_UNKNOWN 255
#define MIN_LOG_LINE 16       /* the smallest bufio buffer the Go shim had */
#define MAX_CONNS 32          /* attach connections served at once */
#define STDIN_BUF 32768
#define READ_BUF 32768
#define KILL_TICK_MS 50       /* re-kill interval after the main process exited */
#define KILL_WAIT_MS 2000     /* how long to wait for the rest to be reaped */
#define DRAIN_WAIT_MS 2000    /* how long to wait for the output to end */

/* ---------------------------------------------------------------- helpers */

static ssize_t write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	size_t done = 0;
	while (done < n) {
		ssize_t k = write(fd, s + done, n - done);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)k;
	}
	return (ssize_t)done;
}

/* shim_warn writes "shim: <message>" to stderr (the container's shim.log). */
static void shim_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void shim_warn(const char *fmt, ...)
{
	char line[2048];
	int n = snprintf(line, sizeof line, "shim: ");
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	write_all(2, line, (size_t)n);
}

/* errstr is strerror worded as Go words errno values (lower-case). */
static const char *errstr(int err)
{
	static char buf[128];
	snprintf(buf, sizeof buf, "%s", strerror(err));
	buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (q == NULL) {
		shim_warn("out of memory");
		_exit(1);
	}
	return q;
}

/* buf is a growable, always NUL-terminated string. */
struct buf {
	char *p;
	size_t len, cap;
};

static void buf_grow(struct buf *b, size_t n)
{
	if (b->len + n + 1 <= b->cap)
		return;
	size_t c = b->cap ? b->cap : 128;
	while (c < b->len + n + 1)
		c *= 2;
	b->p = xrealloc(b->p, c);
	b->cap = c;
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
	buf_grow(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_reset(struct buf *b)
{
	buf_grow(b, 0);
	b->len = 0;
	b->p[0] = 0;
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* buf_quote appends s quoted like Go's %q (for valid UTF-8 input). */
static void buf_quote(struct buf *b, const char *s)
{
	buf_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '"': buf_str(b, "\\\""); break;
		case '\\': buf_str(b, "\\\\"); break;
		case '\a': buf_str(b, "\\a"); break;
		case '\b': buf_str(b, "\\b"); break;
		case '\f': buf_str(b, "\\f"); break;
		case '\n': buf_str(b, "\\n"); break;
		case '\r': buf_str(b, "\\r"); break;
		case '\t': buf_str(b, "\\t"); break;
		case '\v': buf_str(b, "\\v"); break;
		default:
			if (c < 0x20 || c == 0x7f)
				buf_printf(b, "\\x%02x", c);
			else
				buf_add(b, (const char *)&c, 1);
		}
	}
	buf_add(b, "\"", 1);
}

/* buf_json appends s as a JSON string, escaped as Go's encoding/json does. */
static void buf_json(struct buf *b, const char *s)
{
	buf_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '"': buf_str(b, "\\\""); break;
		case '\\': buf_str(b, "\\\\"); break;
		case '\n': buf_str(b, "\\n"); break;
		case '\r': buf_str(b, "\\r"); break;
		case '\t': buf_str(b, "\\t"); break;
		default:
			if (c < 0x20 || c == '<' || c == '>' || c == '&')
				buf_printf(b, "\\u%04x", c);
			else
				buf_add(b, (const char *)&c, 1);
		}
	}
	buf_add(b, "\"", 1);
}

/* clean_path sets out to the shortest path equivalent to p, by Go's
 * filepath.Clean rules. */
static void clean_path(struct buf *out, const char *p)
{
	buf_reset(out);
	int rooted = p[0] == '/';
	if (rooted)
		buf_add(out, "/", 1);
	size_t dotdot = out->len; /* ".." cannot backtrack before this */
	while (*p) {
		if (*p == '/') {
			p++;
			continue;
		}
		const char *e = strchrnul(p, '/');
		size_t n = (size_t)(e - p);
		if (n == 1 && p[0] == '.') {
			/* skip */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (out->len > dotdot) {
				size_t i = out->len - 1;
				while (i > dotdot && out->p[i] != '/')
					i--;
				out->len = i;
				out->p[i] = 0;
			} else if (!rooted) {
				if (out->len > 0)
					buf_add(out, "/", 1);
				buf_add(out, "..", 2);
				dotdot = out->len;
			}
		} else {
			if ((rooted && out->len != 1) || (!rooted && out->len != 0))
				buf_add(out, "/", 1);
			buf_add(out, p, n);
		}
		p = e;
	}
	if (out->len == 0)
		buf_add(out, ".", 1);
}

/* join_path is Go's filepath.Join of two elements. */
static void join_path(struct buf *out, const char *a, const char *b)
{
	struct buf t = {0};
	buf_str(&t, a);
	if (*a && *b)
		buf_add(&t, "/", 1);
	buf_str(&t, b);
	if (t.len == 0)
		buf_reset(out);
	else
		clean_path(out, t.p);
	free(t.p);
}

/* mkdir_all creates dir and its parents (mode 0755) like Go's MkdirAll. */
static int mkdir_all(const char *dir, struct buf *err)
{
	struct stat st;
	if (stat(dir, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		buf_printf(err, "mkdir %s: %s", dir, errstr(ENOTDIR));
		return -1;
	}
	struct buf p = {0};
	buf_str(&p, dir);
	for (char *s = p.p + 1;; s++) {
		if (*s != '/' && *s != 0)
			continue;
		char c = *s;
		*s = 0;
		if (mkdir(p.p, 0755) != 0) {
			int e = errno;
			if (stat(p.p, &st) != 0 || !S_ISDIR(st.st_mode)) {
				buf_printf(err, "mkdir %s: %s", p.p, errstr(e == EEXIST ? ENOTDIR : e));
				free(p.p);
				return -1;
			}
		}
		*s = c;
		if (c == 0)
			break;
	}
	free(p.p);
	return 0;
}

/* read_file reads path into a NUL-terminated malloc'd buffer. */
static char *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct buf b = {0};
	buf_grow(&b, 4096);
	for (;;) {
		buf_grow(&b, 4096);
		ssize_t n = read(fd, b.p + b.len, b.cap - b.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			free(b.p);
			errno = e;
			return NULL;
		}
		if (n == 0)
			break;
		b.len += (size_t)n;
	}
	close(fd);
	b.p[b.len] = 0;
	*len = b.len;
	return b.p;
}

/* proc_stat reads the parent pid and the start time (clock ticks since
 * boot, field 22) of pid from /proc/<pid>/stat. */
static int proc_stat(pid_t pid, pid_t *ppid, unsigned long long *start)
{
	char path[64], data[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n;
	do
		n = read(fd, data, sizeof data - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return -1;
	data[n] = 0;
	/* The command name is in parentheses and may hold spaces and ')'. */
	char *p = strrchr(data, ')');
	if (p == NULL)
		return -1;
	p++;
	/* p is now before field 3 (state); walk to fields 4 and 22. */
	for (int field = 3; field <= 22; field++) {
		while (*p == ' ')
			p++;
		if (*p == 0)
			return -1;
		if (field == 4 && ppid)
			*ppid = (pid_t)strtol(p, NULL, 10);
		if (field == 22 && start)
			*start = strtoull(p, NULL, 10);
		while (*p && *p != ' ')
			p++;
	}
	return 0;
}

static unsigned long long proc_start_time(pid_t pid)
{
	unsigned long long start = 0;
	if (proc_stat(pid, NULL, &start) != 0)
		return 0;
	return start;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* format_time writes ts in local time as Go's time.RFC3339Nano
 * ("2006-01-02T15:04:05.999999999Z07:00": trailing zeros of the fraction
 * dropped, "Z" for UTC). out must hold 64 bytes. */
static size_t format_time(const struct timespec *ts, char *out)
{
	struct tm tm;
	time_t sec = ts->tv_sec;
	localtime_r(&sec, &tm);
	size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	if (ts->tv_nsec != 0) {
		char frac[16];
		snprintf(frac, sizeof frac, ".%09ld", (long)ts->tv_nsec);
		size_t k = 10;
		while (frac[k - 1] == '0')
			k--;
		memcpy(out + n, frac, k);
		n += k;
	}
	long off = tm.tm_gmtoff;
	if (off == 0) {
		out[n++] = 'Z';
	} else {
		char sign = off < 0 ? '-' : '+';
		if (off < 0)
			off = -off;
		off /= 60;
		n += (size_t)snprintf(out + n, 16, "%c%02ld:%02ld", sign, off / 60, off % 60);
	}
	out[n] = 0;
	return n;
}

/* --------------------------------------------------------------- the spec */

/* spec is what the shim runs; see shimspec.go for the file format. */
static struct {
	char *data;
	const char *dir, *log_path, *host_path;
	int stdin_, stdin_once, tty;
	size_t max_line;
	size_t argc;
	char **argv, **envp;
} spec;

/* next_field returns the NUL-terminated field at *p and advances past it,
 * or NULL when the data ends. */
static char *next_field(char **p, char *end)
{
	if (*p >= end)
		return NULL;
	char *f = *p;
	char *z = memchr(f, 0, (size_t)(end - f));
	if (z == NULL)
		return NULL;
	*p = z + 1;
	return f;
}

static char **read_list(char **p, char *end, size_t *count)
{
	char *f = next_field(p, end);
	if (f == NULL)
		return NULL;
	char *e;
	unsigned long n = strtoul(f, &e, 10);
	if (*f == 0 || *e != 0 || n > (size_t)(end - *p))
		return NULL;
	char **list = xrealloc(NULL, (n + 1) * sizeof *list);
	for (unsigned long i = 0; i < n; i++) {
		if ((list[i] = next_field(p, end)) == NULL) {
			free(list);
			return NULL;
		}
	}
	list[n] = NULL;
	if (count)
		*count = n;
	return list;
}

static int read_spec(const char *dir, struct buf *err)
{
	size_t len;
	spec.data = read_file(SPEC_FILE, &len);
	if (spec.data == NULL) {
		buf_printf(err, "open %s/%s: %s", dir, SPEC_FILE, errstr(errno));
		return -1;
	}
	char *p = spec.data, *end = spec.data + len;
	char *magic = next_field(&p, end);
	const char *d = next_field(&p, end);
	const char *log = next_field(&p, end);
	const char *host = next_field(&p, end);
	const char *flags = next_field(&p, end);
	const char *max = next_field(&p, end);
	if (magic == NULL || strcmp(magic, SPEC_MAGIC) != 0 || max == NULL)
		goto malformed;
	spec.dir = d;
	spec.log_path = log;
	spec.host_path = host;
	spec.stdin_ = strchr(flags, 'i') != NULL;
	spec.stdin_once = strchr(flags, 'o') != NULL;
	spec.tty = strchr(flags, 't') != NULL;
	spec.max_line = strtoul(max, NULL, 10);
	if (spec.max_line < MIN_LOG_LINE)
		spec.max_line = MIN_LOG_LINE;
	if ((spec.argv = read_list(&p, end, &spec.argc)) == NULL)
		goto malformed;
	if ((spec.envp = read_list(&p, end, NULL)) == NULL)
		goto malformed;
	return 0;
malformed:
	buf_printf(err, "%s/%s: malformed", dir, SPEC_FILE);
	return -1;
}

/* env_value is the value of key in envp (the last one wins), or "". */
static const char *env_value(char **envp, const char *key)
{
	size_t k = strlen(key);
	const char *v = "";
	for (char **e = envp; *e; e++)
		if (strncmp(*e, key, k) == 0 && (*e)[k] == '=')
			v = *e + k + 1;
	return v;
}

/* is_executable: 0 if path is an executable file, -1 if it is a directory
 * or has no x bit, else the errno of stat. */
static int is_executable(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return errno;
	if (S_ISDIR(st.st_mode) || (st.st_mode & 0111) == 0)
		return -1;
	return 0;
}

/* look_path finds the executable for file as lookPath in env.go does: a
 * name with a slash is taken as is (relative to the working dir), else it is
 * searched in the PATH of the container's environment, then in the host's
 * PATH. Errors are worded like Go's exec.Error. */
static int look_path(const char *file, struct buf *out, struct buf *err)
{
	if (strchr(file, '/')) {
		if (file[0] == '/') {
			buf_reset(out);
			buf_str(out, file);
		} else {
			join_path(out, spec.dir, file);
		}
		int e = is_executable(out->p);
		if (e == 0)
			return 0;
		buf_str(err, "exec: ");
		buf_quote(err, file);
		if (e < 0)
			buf_str(err, ": permission denied");
		else
			buf_printf(err, ": stat %s: %s", out->p, errstr(e));
		return -1;
	}
	const char *lists[2] = {env_value(spec.envp, "PATH"), spec.host_path};
	struct buf d = {0};
	for (int i = 0; i < 2; i++) {
		const char *l = lists[i];
		if (*l == 0)
			continue;
		for (;;) {
			const char *e = strchrnul(l, ':');
			buf_reset(&d);
			if (e == l)
				buf_add(&d, ".", 1);
			else
				buf_add(&d, l, (size_t)(e - l));
			if (d.p[0] != '/') {
				struct buf abs = {0};
				join_path(&abs, spec.dir, d.p);
				free(d.p);
				d = abs;
			}
			join_path(out, d.p, file);
			if (is_executable(out->p) == 0) {
				free(d.p);
				return 0;
			}
			if (*e == 0)
				break;
			l = e + 1;
		}
	}
	free(d.p);
	buf_str(err, "exec: ");
	buf_quote(err, file);
	buf_str(err, ": executable file not found in $PATH");
	return -1;
}

/* --------------------------------------------------------------- the state */

/* state is state.json (shimState in store.go). */
static struct {
	const char *status;
	pid_t shim_pid;
	unsigned long long shim_start;
	pid_t pid;
	unsigned long long pid_start;
	struct timespec started_at, finished_at; /* zero: unset */
	int exit_code, signal;
	const char *reason, *message;
} state;

static void state_json(struct buf *b)
{
	char t[64];
	buf_printf(b, "{\n  \"status\": ");
	buf_json(b, state.status);
	if (state.shim_pid)
		buf_printf(b, ",\n  \"shimPID\": %d", (int)state.shim_pid);
	if (state.shim_start)
		buf_printf(b, ",\n  \"shimStart\": %llu", state.shim_start);
	if (state.pid)
		buf_printf(b, ",\n  \"pid\": %d", (int)state.pid);
	if (state.pid_start)
		buf_printf(b, ",\n  \"pidStart\": %llu", state.pid_start);
	if (state.started_at.tv_sec || state.started_at.tv_nsec) {
		format_time(&state.started_at, t);
		buf_printf(b, ",\n  \"startedAt\": \"%s\"", t);
	}
	if (state.finished_at.tv_sec || state.finished_at.tv_nsec) {
		format_time(&state.finished_at, t);
		buf_printf(b, ",\n  \"finishedAt\": \"%s\"", t);
	}
	buf_printf(b, ",\n  \"exitCode\": %d", state.exit_code);
	if (state.signal)
		buf_printf(b, ",\n  \"signal\": %d", state.signal);
	if (state.reason && *state.reason) {
		buf_str(b, ",\n  \"reason\": ");
		buf_json(b, state.reason);
	}
	if (state.message && *state.message) {
		buf_str(b, ",\n  \"message\": ");
		buf_json(b, state.message);
	}
	buf_str(b, "\n}\n");
}

/* write_state writes state.json atomically (temp file + rename) in the
 * current directory, the container's. */
static int write_state(void)
{
	struct buf b = {0};
	state_json(&b);
	char tmp[] = "." STATE_FILE ".tmpXXXXXX";
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		free(b.p);
		return -1;
	}
	int ok = write_all(fd, b.p, b.len) >= 0;
	int e = errno;
	if (close(fd) != 0 && ok) {
		ok = 0;
		e = errno;
	}
	if (ok && rename(tmp, STATE_FILE) != 0) {
		ok = 0;
		e = errno;
	}
	free(b.p);
	if (!ok) {
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

static int report_fd = -1;

/* send_report tells the runtime how the start went: the state as JSON on
 * the report fd, which is then closed. */
static void send_report(void)
{
	if (report_fd < 0)
		return;
	struct buf b = {0};
	state_json(&b);
	if (write_all(report_fd, b.p, b.len) < 0)
		shim_warn("report: %s", errstr(errno));
	free(b.p);
	close(report_fd);
	report_fd = -1;
}

/* start_failed records a container that could not start, the way
 * containerd does (exit code 128, reason StartError). can_write is 0 when
 * the container directory is not reachable. */
static int start_failed(const char *msg, int can_write)
{
	shim_warn("%s", msg);
	memset(&state, 0, sizeof state);
	state.status = "exited";
	clock_gettime(CLOCK_REALTIME, &state.finished_at);
	state.exit_code = EXIT_CODE_START;
	state.reason = "StartError";
	state.message = msg;
	if (can_write && write_state() != 0)
		shim_warn("write state: %s", errstr(errno));
	send_report();
	return 1;
}

/* ----------------------------------------------------------------- the log */

static struct {
	int fd;
	char *entry; /* one formatted entry */
	size_t cap;
} logfile = {.fd = -1};

static int log_open(struct buf *err)
{
	struct buf dir = {0};
	const char *slash = strrchr(spec.log_path, '/');
	if (slash == NULL)
		buf_str(&dir, ".");
	else if (slash == spec.log_path)
		buf_str(&dir, "/");
	else
		buf_add(&dir, spec.log_path, (size_t)(slash - spec.log_path));
	int r = mkdir_all(dir.p, err);
	free(dir.p);
	if (r != 0)
		return -1;
	int fd = open(spec.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		buf_printf(err, "open %s: %s", spec.log_path, errstr(errno));
		return -1;
	}
	return fd;
}

/* log_reopen opens the log path again (after a rotator renamed the file). */
static void log_reopen(void)
{
	struct buf err = {0};
	int fd = log_open(&err);
	if (fd < 0) {
		shim_warn("reopen log: %s", err.p);
	} else {
		if (logfile.fd >= 0)
			close(logfile.fd);
		logfile.fd = fd;
	}
	free(err.p);
}

/* stream is one output of the container and its pending line. */
struct stream {
	const char *name; /* "stdout" or "stderr" */
	int fd;           /* read end; -1 once ended */
	int is_pty;       /* EIO from a pty master means the terminal closed */
	char *line;       /* pending line, capacity max_line + 1 */
	size_t len;
	int write_failed;
};

static struct stream streams[2] = {{.name = "stdout", .fd = -1}, {.name = "stderr", .fd = -1}};

/* log_entry appends "<time> <stream> <tag> <content>\n" in one write. */
static void log_entry(struct stream *s, char tag, const char *content, size_t n)
{
	if (logfile.fd < 0)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char *e = logfile.entry;
	size_t k = format_time(&ts, e);
	k += (size_t)sprintf(e + k, " %s %c ", s->name, tag);
	memcpy(e + k, content, n);
	k += n;
	e[k++] = '\n';
	if (write_all(logfile.fd, e, k) < 0) {
		if (!s->write_failed)
			shim_warn("copy %s: %s", s->name, errstr(errno));
		s->write_failed = 1;
	} else {
		s->write_failed = 0;
	}
}

/*
 * The CRI log format, as containerd's redirectLogs and the Go shim's
 * copyLog write it: one F entry per line without its "\n" (and without a
 * "\r" before it), lines longer than max split into P entries of max bytes,
 * an unterminated last line written as P.
 *
 * The Go shim reads lines through a bufio.Reader of max bytes, so a "\r" is
 * stripped only when it is in the last chunk of the line, i.e. when the
 * line's length is not a multiple of max. The pending buffer holds up to
 * max+1 bytes so that the decision can wait for the "\n": with len bytes
 * pending, the line's length is a multiple of max exactly when len == max.
 */
static void line_append(struct stream *s, const char *p, size_t n)
{
	size_t max = spec.max_line;
	while (n > 0) {
		if (s->len == max + 1) {
			log_entry(s, 'P', s->line, max);
			s->line[0] = s->line[max];
			s->len = 1;
		}
		size_t k = max + 1 - s->len;
		if (k > n)
			k = n;
		memcpy(s->line + s->len, p, k);
		s->len += k;
		p += k;
		n -= k;
	}
}

static void line_end(struct stream *s)
{
	size_t max = spec.max_line;
	if (s->len > 0 && s->len != max && s->line[s->len - 1] == '\r')
		s->len--;
	if (s->len > max) {
		log_entry(s, 'P', s->line, max);
		log_entry(s, 'F', s->line + max, s->len - max);
	} else {
		log_entry(s, 'F', s->line, s->len);
	}
	s->len = 0;
}

/* line_flush writes what is pending at the end of the stream, as P. */
static void line_flush(struct stream *s)
{
	size_t max = spec.max_line;
	if (s->len > max) {
		log_entry(s, 'P', s->line, max);
		log_entry(s, 'P', s->line + max, s->len - max);
	} else if (s->len > 0) {
		log_entry(s, 'P', s->line, s->len);
	}
	s->len = 0;
}

static void feed(struct stream *s, const char *p, size_t n)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t seg = nl ? (size_t)(nl - p) : n;
		line_append(s, p, seg);
		p += seg;
		n -= seg;
		if (nl) {
			line_end(s);
			p++;
			n--;
		}
	}
}

static void stream_end(struct stream *s)
{
	line_flush(s);
	close(s->fd);
	s->fd = -1;
}

static void on_output(struct stream *s)
{
	static char rbuf[READ_BUF];
	ssize_t n;
	do
		n = read(s->fd, rbuf, sizeof rbuf);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		feed(s, rbuf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n < 0 && !(s->is_pty && errno == EIO))
		shim_warn("copy %s: %s", s->name, errstr(errno));
	stream_end(s);
}

/* ------------------------------------------------------ the container process */

static pid_t main_pid;
static int main_exited, main_status, no_children;
static int in_fd = -1;     /* attach input: stdin pipe or pty master; -1: none/closed */
static int in_closable;    /* in_fd is a pipe (not the terminal) */
static int pty_fd = -1;    /* pty master, for resizes */
static int stdin_once;

/* start_container starts the process (see StartContainer in doc.go). */
static int start_container(struct buf *err)
{
	struct stat st;
	int e = 0;
	if (stat(spec.dir, &st) != 0)
		e = errno;
	else if (!S_ISDIR(st.st_mode))
		e = ENOTDIR;
	if (e != 0) {
		buf_str(err, "failed to start container process: chdir to cwd (");
		buf_quote(err, spec.dir);
		buf_printf(err, ") set in config failed: %s", errstr(e));
		return -1;
	}
	struct buf path = {0}, lerr = {0};
	if (look_path(spec.argv[0], &path, &lerr) != 0) {
		buf_printf(err, "failed to start container process: %s", lerr.p);
		free(path.p);
		free(lerr.p);
		return -1;
	}
	free(lerr.p);

	int child_fds[3] = {-1, -1, -1}; /* the child's stdin, stdout, stderr */
	if (spec.tty) {
		char name[128];
		int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		int s = -1;
		if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, name, sizeof name) != 0 ||
		    (s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
			buf_printf(err, "failed to allocate a terminal: %s", errstr(errno));
			if (m >= 0)
				close(m);
			free(path.p);
			return -1;
		}
		struct winsize ws = {.ws_row = 24, .ws_col = 80};
		ioctl(m, TIOCSWINSZ, &ws);
		child_fds[0] = child_fds[1] = child_fds[2] = s;
		/* The output reads a duplicate; the terminal stays open for
		 * input and resizes until the shim ends. */
		if ((streams[0].fd = fcntl(m, F_DUPFD_CLOEXEC, 3)) < 0) {
			buf_printf(err, "failed to allocate a terminal: %s", errstr(errno));
			close(s);
			close(m);
			free(path.p);
			return -1;
		}
		streams[0].is_pty = 1;
		pty_fd = m;
		if (spec.stdin_)
			in_fd = m;
	} else {
		int p[2];
		if (spec.stdin_) {
			if (pipe2(p, O_CLOEXEC) != 0)
				goto pipe_failed;
			child_fds[0] = p[0];
			in_fd = p[1];
			in_closable = 1;
		} else if ((child_fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
			goto pipe_failed;
		}
		for (int i = 0; i < 2; i++) {
			if (pipe2(p, O_CLOEXEC) != 0)
				goto pipe_failed;
			streams[i].fd = p[0];
			child_fds[i + 1] = p[1];
		}
	}
	if (in_fd >= 0) /* input must never block the loop */
		fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
	stdin_once = spec.stdin_once && in_closable;

	/* The child reports an exec failure (its errno) on a close-on-exec pipe. */
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) != 0)
		goto pipe_failed;
	pid_t pid = fork();
	if (pid == 0) {
		/* The child: only async-signal-safe calls from here on. */
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_DFL;
		for (int sig = 1; sig < NSIG; sig++)
			sigaction(sig, &sa, NULL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (spec.tty ? setsid() < 0 : setpgid(0, 0) < 0)
			goto child_failed;
		for (int i = 0; i < 3; i++)
			if (dup2(child_fds[i], i) < 0)
				goto child_failed;
		if (spec.tty && ioctl(0, TIOCSCTTY, 0) < 0)
			goto child_failed;
		if (chdir(spec.dir) < 0)
			goto child_failed;
		execve(path.p, spec.argv, spec.envp);
	child_failed:;
		int ce = errno;
		write_all(ep[1], &ce, sizeof ce);
		_exit(127);
	}
	int fork_err = errno;
	close(ep[1]);
	close(child_fds[0]);
	if (child_fds[1] != child_fds[0])
		close(child_fds[1]);
	if (child_fds[2] != child_fds[0])
		close(child_fds[2]);
	if (pid < 0) {
		e = fork_err;
	} else {
		ssize_t n;
		do
			n = read(ep[0], &e, sizeof e);
		while (n < 0 && errno == EINTR);
		if (n != sizeof e)
			e = 0;
	}
	close(ep[0]);
	if (e != 0) {
		if (pid > 0)
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
		buf_printf(err, "failed to start container process: fork/exec %s: %s", path.p, errstr(e));
		free(path.p);
		return -1;
	}
	free(path.p);
	main_pid = pid;
	return 0;

pipe_failed:
	/* The shim exits after a start failure: the fds opened so far go with it. */
	buf_printf(err, "failed to start container process: %s", errstr(errno));
	free(path.p);
	return -1;
}

/* reap collects every exited child (the main process and the orphans
 * re-parented to the shim, a child subreaper). */
static void reap(void)
{
	for (;;) {
		int status;
		pid_t p = waitpid(-1, &status, WNOHANG);
		if (p > 0) {
			if (p == main_pid && !main_exited) {
				main_exited = 1;
				main_status = status;
			}
			continue;
		}
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0 && errno == ECHILD)
			no_children = 1;
		return;
	}
}

/* kill_rest SIGKILLs the container's process group and every remaining
 * child of the shim, as the kernel does when a PID namespace's init exits. */
static void kill_rest(void)
{
	kill(-main_pid, SIGKILL);
	DIR *d = opendir("/proc");
	if (d == NULL)
		return;
	pid_t self = getpid();
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		pid_t ppid;
		if (*end != 0 || pid <= 0)
			continue;
		if (proc_stat((pid_t)pid, &ppid, NULL) == 0 && ppid == self)
			kill((pid_t)pid, SIGKILL);
	}
	closedir(d);
}

/* ---------------------------------------------------------- the attach socket */

/* The protocol (attachsock.go): a connection starts with a header line,
 * "stdin\n" (the rest is input for the main process; its end closes the
 * process's stdin for StdinOnce containers) or "resize\n" (then lines
 * "<cols> <rows>\n"). */
enum { CONN_FREE, CONN_HEADER, CONN_STDIN, CONN_RESIZE };

static struct conn {
	int kind;
	int fd;
	char line[64];
	size_t len;
	int skip; /* discarding an over-long resize line */
} conns[MAX_CONNS];

static int listen_fd = -1;

/* Input read from one stdin connection and not yet written to in_fd. */
static char stdin_buf[STDIN_BUF];
static size_t pend_off, pend_len;
static int pend_conn = -1;

static int listen_attach(void)
{
	unlink(ATTACH_SOCKET);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	/* A relative name: the shim's working directory is the container's,
	 * so the path's length does not matter. */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, ATTACH_SOCKET);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(ATTACH_SOCKET) + 1);
	if (bind(fd, (struct sockaddr *)&sa, len) != 0 || listen(fd, SOMAXCONN) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void conn_close(int i)
{
	if (conns[i].kind == CONN_FREE)
		return;
	close(conns[i].fd);
	conns[i].kind = CONN_FREE;
	conns[i].fd = -1;
	if (pend_conn == i) {
		pend_conn = -1;
		pend_off = pend_len = 0;
	}
}

static void close_stdin(void)
{
	if (in_fd >= 0 && in_closable) {
		close(in_fd);
		in_fd = -1;
	}
}

/* stdin_done ends stdin connection i: its input ended or could not be
 * written. For StdinOnce containers this closes the process's stdin. */
static void stdin_done(int i)
{
	conn_close(i);
	if (stdin_once)
		close_stdin();
}

static void on_accept(void)
{
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return; /* EAGAIN, or out of fds: try again on the next event */
		}
		/* Only the shim's user (or root) may attach. */
		struct ucred cred;
		socklen_t len = sizeof cred;
		int slot = -1;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
		    (cred.uid == getuid() || cred.uid == 0)) {
			for (int i = 0; i < MAX_CONNS; i++)
				if (conns[i].kind == CONN_FREE) {
					slot = i;
					break;
				}
		}
		if (slot < 0) {
			close(fd);
			continue;
		}
		conns[slot] = (struct conn){.kind = CONN_HEADER, .fd = fd};
	}
}

/* flush_stdin writes the pending input; what cannot be written now waits
 * for POLLOUT. A write error ends the connection the input came from. */
static void flush_stdin(void)
{
	while (pend_off < pend_len) {
		if (in_fd < 0) {
			stdin_done(pend_conn);
			return;
		}
		ssize_t n = write(in_fd, stdin_buf + pend_off, pend_len - pend_off);
		if (n > 0) {
			pend_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		stdin_done(pend_conn);
		return;
	}
	pend_off = pend_len = 0;
	pend_conn = -1;
}

static void on_resize_line(const char *line)
{
	/* "<cols> <rows>", as fmt.Sscanf("%d %d") into uint16s. */
	char *end;
	const char *p = line;
	while (*p == ' ')
		p++;
	if (!isdigit((unsigned char)*p))
		return;
	unsigned long cols = strtoul(p, &end, 10);
	p = end;
	if (*p != ' ')
		return;
	while (*p == ' ')
		p++;
	if (!isdigit((unsigned char)*p))
		return;
	unsigned long rows = strtoul(p, &end, 10);
	if (cols > 0xffff || rows > 0xffff || pty_fd < 0)
		return;
	struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
	ioctl(pty_fd, TIOCSWINSZ, &ws);
}

static void on_conn(int i)
{
	struct conn *c = &conns[i];
	ssize_t n;
	switch (c->kind) {
	case CONN_HEADER:
		/* Byte by byte: what follows the header is not ours to read yet. */
		for (;;) {
			char ch;
			do
				n = read(c->fd, &ch, 1);
			while (n < 0 && errno == EINTR);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			if (n <= 0 || (ch != '\n' && c->len == sizeof c->line - 1)) {
				conn_close(i);
				return;
			}
			if (ch != '\n') {
				c->line[c->len++] = ch;
				continue;
			}
			c->line[c->len] = 0;
			c->len = 0;
			if (strcmp(c->line, "stdin") == 0 && in_fd >= 0) {
				c->kind = CONN_STDIN;
			} else if (strcmp(c->line, "resize") == 0) {
				c->kind = CONN_RESIZE;
			} else {
				conn_close(i);
			}
			return;
		}
	case CONN_STDIN:
		/* Polled only while no input is pending. */
		do
			n = read(c->fd, stdin_buf, sizeof stdin_buf);
		while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 || in_fd < 0) {
			stdin_done(i);
			return;
		}
		pend_off = 0;
		pend_len = (size_t)n;
		pend_conn = i;
		flush_stdin();
		return;
	case CONN_RESIZE:
		do
			n = read(c->fd, c->line + c->len, sizeof c->line - 1 - c->len);
		while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(i);
			return;
		}
		c->len += (size_t)n;
		for (;;) {
			char *nl = memchr(c->line, '\n', c->len);
			if (nl == NULL)
				break;
			*nl = 0;
			if (!c->skip)
				on_resize_line(c->line);
			c->skip = 0;
			size_t used = (size_t)(nl - c->line) + 1;
			memmove(c->line, nl + 1, c->len - used);
			c->len -= used;
		}
		if (c->len == sizeof c->line - 1) { /* an over-long line: drop it */
			c->skip = 1;
			c->len = 0;
		}
		return;
	}
}

/* ----------------------------------------------------------------- the shim */

static int sig_fd = -1;

static void on_signals(void)
{
	struct signalfd_siginfo si;
	for (;;) {
		ssize_t n = read(sig_fd, &si, sizeof si);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != sizeof si)
			break;
		if (si.ssi_signo == SIGUSR1)
			log_reopen();
		/* SIGCHLD: reaped below. SIGTERM, SIGINT, SIGHUP: ignored, the
		 * shim outlives its agent and terminal. */
	}
	reap();
}

enum { RUNNING, KILLING, DRAINING };

/* loop serves the container until it has exited, the rest of its
 * processes were killed and its output was drained. */
static void loop(void)
{
	int phase = RUNNING;
	long long deadline = 0, next_tick = 0;
	enum { P_SIG, P_LISTEN, P_CONN, P_OUT, P_IN };
	struct pollfd fds[4 + MAX_CONNS];
	int what[4 + MAX_CONNS], idx[4 + MAX_CONNS];

	reap(); /* a SIGCHLD may have come before the loop */
	for (;;) {
		long long now = mono_ms();
		if (phase == RUNNING && main_exited) {
			clock_gettime(CLOCK_REALTIME, &state.finished_at);
			kill_rest();
			reap();
			phase = KILLING;
			deadline = now + KILL_WAIT_MS;
			next_tick = now + KILL_TICK_MS;
		}
		if (phase == KILLING) {
			if (!no_children && now >= deadline)
				shim_warn("some processes of the container could not be reaped");
			if (no_children || now >= deadline) {
				phase = DRAINING;
				deadline = now + DRAIN_WAIT_MS;
			} else if (now >= next_tick) {
				kill_rest();
				reap();
				next_tick = now + KILL_TICK_MS;
			}
		}
		if (phase == DRAINING) {
			/* An escaped process holding a pipe must not hold the
			 * exit record forever. */
			if (now >= deadline)
				for (int i = 0; i < 2; i++)
					if (streams[i].fd >= 0)
						stream_end(&streams[i]);
			if (streams[0].fd < 0 && streams[1].fd < 0)
				return;
		}

		int n = 0;
		fds[n] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
		what[n++] = P_SIG;
		if (listen_fd >= 0) {
			fds[n] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
			what[n++] = P_LISTEN;
		}
		for (int i = 0; i < MAX_CONNS; i++) {
			if (conns[i].kind == CONN_FREE)
				continue;
			if (conns[i].kind == CONN_STDIN && pend_len > 0)
				continue; /* back-pressure: one buffer of input at a time */
			fds[n] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
			what[n] = P_CONN;
			idx[n++] = i;
		}
		for (int i = 0; i < 2; i++) {
			if (streams[i].fd < 0)
				continue;
			fds[n] = (struct pollfd){.fd = streams[i].fd, .events = POLLIN};
			what[n] = P_OUT;
			idx[n++] = i;
		}
		if (pend_len > 0 && in_fd >= 0) {
			fds[n] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
			what[n++] = P_IN;
		}

		int timeout = -1;
		if (phase != RUNNING) {
			long long until = deadline;
			if (phase == KILLING && next_tick < until)
				until = next_tick;
			timeout = until > now ? (int)(until - now) : 0;
		}
		int r = poll(fds, (nfds_t)n, timeout);
		if (r < 0) {
			if (errno != EINTR) {
				shim_warn("poll: %s", errstr(errno));
				usleep(10000);
			}
			continue;
		}
		for (int k = 0; k < n; k++) {
			if (fds[k].revents == 0)
				continue;
			/* An fd closed by an earlier handler in this round is skipped. */
			switch (what[k]) {
			case P_SIG:
				on_signals();
				break;
			case P_LISTEN:
				on_accept();
				break;
			case P_CONN:
				if (conns[idx[k]].kind != CONN_FREE && conns[idx[k]].fd == fds[k].fd)
					on_conn(idx[k]);
				break;
			case P_OUT:
				if (streams[idx[k]].fd == fds[k].fd)
					on_output(&streams[idx[k]]);
				break;
			case P_IN:
				if (in_fd == fds[k].fd)
					flush_stdin();
				break;
			}
		}
	}
}

static int usage(const char *msg)
{
	shim_warn("%s", msg);
	fprintf(stderr, "usage: k1s shim --dir <container dir> [--report-fd N]\n");
	return 2;
}

/* shim_main is `k1s shim --dir <container dir> [--report-fd N]`; args are
 * the arguments after "shim". Flags are read as Go's flag package reads
 * them: -name value or -name=value, with one or two dashes. */
static int shim_main(int argc, char **argv)
{
	const char *dir = NULL;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == 0)
			break; /* the first non-flag ends the flags; the rest is ignored */
		if (strcmp(a, "--") == 0)
			break;
		a += a[1] == '-' ? 2 : 1;
		const char *eq = strchr(a, '=');
		size_t len = eq ? (size_t)(eq - a) : strlen(a);
		const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
		if (val == NULL)
			return usage("flag needs an argument");
		if (len == 3 && strncmp(a, "dir", 3) == 0) {
			dir = val;
		} else if (len == 9 && strncmp(a, "report-fd", 9) == 0) {
			char *end;
			long fd = strtol(val, &end, 10);
			if (*val == 0 || *end != 0)
				return usage("invalid value for --report-fd");
			report_fd = fd >= 0 && fd <= 0x7fffffff ? (int)fd : -1;
		} else {
			return usage("flag provided but not defined");
		}
	}
	if (dir == NULL || *dir == 0)
		return usage("--dir is required");

	/* Keep 0, 1 and 2 taken, so that no pipe lands on them. */
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
			open("/dev/null", O_RDWR);
	if (report_fd >= 0 && fcntl(report_fd, F_SETFD, FD_CLOEXEC) != 0)
		report_fd = -1;
	tzset();

	struct buf msg = {0};
	/* The container directory is the working directory from now on:
	 * state.json, shim.spec and attach.sock are relative names. */
	if (chdir(dir) != 0) {
		buf_printf(&msg, "failed to read container spec: chdir %s: %s", dir, errstr(errno));
		return start_failed(msg.p, 0);
	}
	struct buf err = {0};
	if (read_spec(dir, &err) != 0) {
		buf_printf(&msg, "failed to read container spec: %s", err.p);
		return start_failed(msg.p, 1);
	}
	if (spec.argc == 0)
		return start_failed("no command specified", 1);

	/* Orphans of the container are re-parented to the shim, which kills
	 * and reaps them when the main process exits. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	/* Signals go to a signalfd; the child resets its mask and dispositions. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	signal(SIGCHLD, SIG_DFL); /* not SIG_IGN, or children would not be waitable */
	signal(SIGPIPE, SIG_IGN); /* a closed stdin or report pipe is an EPIPE */
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
	    (sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		buf_printf(&msg, "failed to start container process: signalfd: %s", errstr(errno));
		return start_failed(msg.p, 1);
	}

	buf_reset(&err);
	if ((logfile.fd = log_open(&err)) < 0) {
		buf_str(&msg, "failed to create container log ");
		buf_quote(&msg, spec.log_path);
		buf_printf(&msg, ": %s", err.p);
		return start_failed(msg.p, 1);
	}
	logfile.cap = spec.max_line + 128;
	logfile.entry = xrealloc(NULL, logfile.cap);
	for (int i = 0; i < 2; i++)
		streams[i].line = xrealloc(NULL, spec.max_line + 1);

	buf_reset(&err);
	if (start_container(&err) != 0) {
		close(logfile.fd);
		logfile.fd = -1;
		return start_failed(err.p, 1);
	}
	state.status = "running";
	state.shim_pid = getpid();
	state.shim_start = proc_start_time(state.shim_pid);
	state.pid = main_pid;
	state.pid_start = proc_start_time(main_pid);
	clock_gettime(CLOCK_REALTIME, &state.started_at);
	if (spec.stdin_ || spec.tty) {
		/* Listening before the report: an attach right after the start
		 * finds the socket. */
		if ((listen_fd = listen_attach()) < 0)
			shim_warn("attach socket: %s", errstr(errno));
	}
	if (write_state() != 0)
		shim_warn("write state: %s", errstr(errno));
	send_report();

	loop();

	for (int i = 0; i < MAX_CONNS; i++)
		conn_close(i);
	if (listen_fd >= 0)
		close(listen_fd);
	close_stdin();
	if (pty_fd >= 0)
		close(pty_fd);
	close(logfile.fd);

	int code = EXIT_CODE_UNKNOWN, sig = 0;
	if (WIFEXITED(main_status)) {
		code = WEXITSTATUS(main_status);
	} else if (WIFSIGNALED(main_status)) {
		sig = WTERMSIG(main_status);
		code = 128 + sig;
	}
	state.status = "exited";
	state.exit_code = code;
	state.signal = sig;
	state.reason = code == 0 ? "Completed" : "Error";
	if (write_state() != 0) {
		shim_warn("write state: %s", errstr(errno));
		return 1;
	}
	return 0;
}

/*
 * k1s_shim_init runs when the process starts, before the Go runtime. A
 * shim is recognised by both K1S_SHIM=1 in the environment (set by the
 * runtime for shims only) and "shim" as the first argument; anything else
 * returns to Go at once. `k1s shim` typed by hand (no K1S_SHIM) reaches
 * ShimMain in Go, which executes the binary again with K1S_SHIM=1.
 */
__attribute__((constructor)) static void k1s_shim_init(void)
{
	const char *marker = getenv(SHIM_ENV);
	if (marker == NULL || strcmp(marker, "1") != 0)
		return;
	/* argv from /proc: not every libc passes it to constructors. */
	size_t len;
	char *cmdline = read_file("/proc/self/cmdline", &len);
	if (cmdline == NULL)
		return; /* ShimMain reports that the C shim did not start */
	size_t argc = 0;
	for (size_t i = 0; i < len; i++)
		if (cmdline[i] == 0)
			argc++;
	char **argv = xrealloc(NULL, (argc + 1) * sizeof *argv);
	char *p = cmdline;
	for (size_t i = 0; i < argc; i++) {
		argv[i] = p;
		p += strlen(p) + 1;
	}
	argv[argc] = NULL;
	if (argc < 2 || strcmp(argv[1], "shim") != 0) {
		free(argv);
		free(cmdline);
		return;
	}
	_exit(shim_main((int)argc - 2, argv + 2));
}
