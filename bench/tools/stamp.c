/*
 * stamp FILE: appends the current time (nanoseconds since the epoch, as
 * `date +%s%N` prints it) and a newline to FILE. kubeletbench's exec probe
 * with -exec-probe stamp: one small static process per probe instead of a
 * shell and date, so the probe's own cost does not crowd the measurement.
 */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	struct timespec ts;
	char buf[32];
	int fd, n;

	if (argc != 2) {
		fprintf(stderr, "usage: stamp FILE\n");
		return 2;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(buf, sizeof buf, "%lld%09ld\n", (long long)ts.tv_sec, ts.tv_nsec);
	fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	return write(fd, buf, n) == n ? 0 : 1;
}
