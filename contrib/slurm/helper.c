/*
 * scan-gate SPANK plugin: running the helper and reading its answer, and starting
 * detached processes. This runs inside slurmstepd, a threaded process: between fork and
 * exec only async-signal-safe calls are made, and everything the child needs is prepared
 * before the fork.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <slurm/spank.h>

#include "scan_gate.h"

#define PROTOCOL_HEADER "scan-gate-spank 2"
#define MAX_ANSWER (1 << 20)
#define MAX_STDERR (16 << 10)

/* close_other_fds closes every descriptor above 2 in a freshly forked child. */
static void close_other_fds(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
		return;
#endif
	for (int fd = 3; fd < 65536; fd++)
		close(fd);
}

/* reset_signals gives a freshly forked child the signal state of a new program: nothing
 * blocked, nothing ignored. slurmstepd's own mask and ignored signals would otherwise
 * survive the exec. */
static void reset_signals(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* buffer is a growing byte buffer with a cap; bytes past the cap are dropped. */
struct buffer {
	char *data;
	size_t len, cap, max;
};

static int buffer_read(struct buffer *b, int fd)
{
	char chunk[8192];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n <= 0)
		return n < 0 && (errno == EINTR || errno == EAGAIN) ? 1 : 0;
	if (b->len + n + 1 > b->cap && b->len < b->max) {
		size_t cap = b->cap ? b->cap * 2 : 16384;
		char *data;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > b->max + 1)
			cap = b->max + 1;
		data = realloc(b->data, cap);
		if (!data)
			return 0;
		b->data = data;
		b->cap = cap;
	}
	if (b->len + n > b->max)
		n = b->max - b->len;
	memcpy(b->data + b->len, chunk, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 1;
}

/* trim_newlines makes a helper's stderr one line, for a message. */
static void trim_newlines(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	for (char *p = s; *p; p++) {
		if (*p == '\n')
			*p = ' ';
	}
}

int sg_helper_run(char *const argv[], char *const envp[], int timeout,
		  struct sg_answer *answer, char *err, size_t errlen)
{
	int out[2], errp[2], status = 0, rc = -1;
	struct buffer stdout_buf = { .max = MAX_ANSWER }, stderr_buf = { .max = MAX_STDERR };
	long long deadline = now_ms() + (long long)timeout * 1000;
	pid_t pid;

	if (pipe2(out, O_CLOEXEC) < 0)
		goto pipe_failed;
	if (pipe2(errp, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		goto pipe_failed;
	}

	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "starting %s: fork: %s", argv[0], strerror(errno));
		close(out[0]);
		close(out[1]);
		close(errp[0]);
		close(errp[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		reset_signals();
		setsid(); /* its own process group, killed whole on timeout */
		if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(errp[1], 2) < 0)
			_exit(126);
		/* Called from user_init, slurmstepd runs with the job user's effective ids and
		 * root's real and saved ones: the helper takes back root, user first. */
		if (setresuid(0, 0, 0) < 0 || setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0)
			_exit(125);
		close_other_fds();
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(out[1]);
	close(errp[1]);

	struct pollfd fds[2] = { { .fd = out[0], .events = POLLIN },
				 { .fd = errp[0], .events = POLLIN } };
	int open_fds = 2, timed_out = 0;

	while (open_fds > 0) {
		long long left = deadline - now_ms();

		if (left <= 0) {
			timed_out = 1;
			break;
		}
		int n = poll(fds, 2, left > 1000 ? 1000 : (int)left);

		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; n > 0 && i < 2; i++) {
			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (!buffer_read(i == 0 ? &stdout_buf : &stderr_buf, fds[i].fd)) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
			}
		}
	}
	for (int i = 0; i < 2; i++) {
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	}
	if (timed_out)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;

	if (stderr_buf.len > 0) {
		slurm_info("scan-gate: %s: %s", argv[0], stderr_buf.data);
		trim_newlines(stderr_buf.data);
	}
	/* The helper's own words, when it said any, follow ": ". */
	const char *sep = stderr_buf.len > 0 ? ": " : "";
	const char *why = stderr_buf.len > 0 ? stderr_buf.data : "";

	if (timed_out) {
		snprintf(err, errlen, "%s did not answer within %d seconds", argv[0], timeout);
	} else if (WIFSIGNALED(status)) {
		snprintf(err, errlen, "%s was killed by signal %d%s%s", argv[0],
			 WTERMSIG(status), sep, why);
	} else if (WEXITSTATUS(status) == 127 && !stderr_buf.len) {
		/* The child's execve failed: the helper is missing or not executable. */
		snprintf(err, errlen, "%s could not be run (missing, or not executable)",
			 argv[0]);
	} else if (WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "%s exited with status %d%s%s", argv[0],
			 WEXITSTATUS(status), sep, why);
	} else if (!stdout_buf.data) {
		snprintf(err, errlen, "%s gave no answer", argv[0]);
	} else {
		rc = sg_answer_parse(stdout_buf.data, answer, err, errlen);
	}
	free(stdout_buf.data);
	free(stderr_buf.data);
	return rc;

pipe_failed:
	snprintf(err, errlen, "starting %s: pipe: %s", argv[0], strerror(errno));
	return -1;
}

static int append(void **array, int *count, size_t size, const void *item)
{
	void *grown = realloc(*array, (size_t)(*count + 1) * size);

	if (!grown)
		return -1;
	memcpy((char *)grown + (size_t)*count * size, item, size);
	*array = grown;
	(*count)++;
	return 0;
}

/* parse_ull reads a decimal number and the space after it from *s, and moves *s past
 * both. */
static int parse_ull(char **s, unsigned long long *value)
{
	char *end;

	errno = 0;
	*value = strtoull(*s, &end, 10);
	if (errno || end == *s || **s == '-' || *end != ' ')
		return -1;
	*s = end + 1;
	return 0;
}

/* parse_ll is parse_ull for a signed number. */
static int parse_ll(char **s, long long *value)
{
	char *end;

	errno = 0;
	*value = strtoll(*s, &end, 10);
	if (errno || end == *s || *end != ' ')
		return -1;
	*s = end + 1;
	return 0;
}

int sg_answer_parse(char *text, struct sg_answer *answer, char *err, size_t errlen)
{
	char *save = NULL, *line = strtok_r(text, "\n", &save);

	memset(answer, 0, sizeof(*answer));
	if (!line || strcmp(line, PROTOCOL_HEADER)) {
		snprintf(err, errlen, "the helper's answer does not start with \"%s\"",
			 PROTOCOL_HEADER);
		return -1;
	}
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *rest = strchr(line, ' ');

		if (rest)
			*rest++ = '\0';
		else
			rest = "";
		if (!strcmp(line, "end")) {
			if (!answer->action[0]) {
				snprintf(err, errlen, "the helper's answer has no action");
				return -1;
			}
			return 0;
		} else if (!strcmp(line, "action")) {
			snprintf(answer->action, sizeof(answer->action), "%s", rest);
		} else if (!strcmp(line, "watch")) {
			answer->watch = !strcmp(rest, "yes");
		} else if (!strcmp(line, "message")) {
			char *message = strdup(rest);

			if (!message || append((void **)&answer->messages, &answer->nmessages,
					       sizeof(char *), &message) < 0)
				goto no_memory;
		} else if (!strcmp(line, "image")) {
			/* image DEV INO SIZE MTIME_NS CTIME_NS PATH */
			unsigned long long dev, ino;
			long long size, mtime_ns, ctime_ns;
			struct sg_image image;

			if (parse_ull(&rest, &dev) < 0 || parse_ull(&rest, &ino) < 0 ||
			    parse_ll(&rest, &size) < 0 || parse_ll(&rest, &mtime_ns) < 0 ||
			    parse_ll(&rest, &ctime_ns) < 0 || !*rest)
				goto bad_image;
			image.dev = (dev_t)dev;
			image.ino = (ino_t)ino;
			image.size = (off_t)size;
			image.mtime_ns = mtime_ns;
			image.ctime_ns = ctime_ns;
			image.path = strdup(rest);
			if (!image.path || append((void **)&answer->images, &answer->nimages,
						  sizeof(image), &image) < 0)
				goto no_memory;
		}
		/* Other keywords are for later versions: ignored. */
	}
	snprintf(err, errlen, "the helper's answer ends without \"end\"");
	return -1;

bad_image:
	snprintf(err, errlen, "the helper's answer has a bad image line");
	return -1;
no_memory:
	snprintf(err, errlen, "reading the helper's answer: out of memory");
	return -1;
}

int sg_spawn_detached(char *const argv[], char *const envp[])
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* The middle child: start the process in a new session and leave, so that it
		 * is nobody's child in slurmstepd and nothing waits for it. */
		int null = open("/dev/null", O_RDWR);

		reset_signals();
		if (null < 0 || setsid() < 0)
			_exit(1);
		if (fork() != 0)
			_exit(0);
		if (dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(126);
		close_other_fds();
		execve(argv[0], argv, envp);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return 0;
}
