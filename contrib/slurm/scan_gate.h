/*
 * scan-gate SPANK plugin: shared declarations.
 *
 * The plugin finds out, as root in slurmstepd before the tasks start (init_post_opt),
 * whether the images a step launches may start, by running spank-helper; it enforces the
 * answer in each task (task_init), where a refusal fails the step and never the node; and
 * it starts `scan-gate watch` for tasks whose images cannot be named before they run
 * (task_post_fork). See README.md.
 */
#ifndef SCAN_GATE_H
#define SCAN_GATE_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

/* The plugin's own functions stay out of slurmstepd's symbol table. */
#pragma GCC visibility push(hidden)

enum sg_watch { SG_WATCH_OFF, SG_WATCH_UNRESOLVED, SG_WATCH_ALL };

/* The plugstack.conf arguments, key=value, every key optional. */
struct sg_config {
	char helper[PATH_MAX];    /* helper=     the spank-helper binary */
	char policy[PATH_MAX];    /* policy=     the policy file; "" for the helper's default */
	char scan_gate[PATH_MAX]; /* scan_gate=  the scan-gate binary, for the watch */
	int timeout;              /* timeout=    seconds the helper may take */
	int on_error_block;       /* on_error=   block|allow when the helper fails */
	enum sg_watch watch;      /* watch=      off|unresolved|all */
	char watch_action[16];    /* watch_action= log|notify|cancel; "" for the policy's */
	int batch;                /* batch=      yes|no: check batch scripts */
	int verbose;              /* verbose=    yes|no: the helper logs its steps */
};

/* Defaults for sg_config. */
#define SG_DEFAULT_HELPER "/usr/local/libexec/scan-gate/spank-helper"
#define SG_DEFAULT_SCAN_GATE "/usr/local/bin/scan-gate"
#define SG_DEFAULT_TIMEOUT 300

/*
 * sg_config_parse reads the plugstack.conf arguments into *cfg, defaults first. On an
 * unknown key or a bad value it writes the problem into err and returns -1.
 */
int sg_config_parse(struct sg_config *cfg, int ac, char **av, char *err, size_t errlen);

/* sg_option_valid reports whether a --scan-gate value is one the helper accepts. */
int sg_option_valid(const char *value);

/* A checked image, as the helper named it: the task must open this very file, unchanged
 * since the check (a file rewritten in place keeps its inode, never its change time). */
struct sg_image {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	long long mtime_ns;
	long long ctime_ns;
};

/* The helper's answer on one step. */
struct sg_answer {
	char action[16];          /* allow, audit, warn or block */
	int watch;                /* the watch should start */
	char **messages;          /* lines for the job's stderr */
	int nmessages;
	struct sg_image *images;
	int nimages;
};

/*
 * sg_helper_run runs the helper with argv (NULL-terminated, argv[0] the binary) and envp,
 * as root (taking back the real and saved root ids of a process that has only set its
 * effective ids to a user's), at most timeout seconds, and reads its answer. On failure it
 * returns -1 with what went wrong in err (including the helper's stderr); the helper's
 * stderr also goes to the log.
 */
int sg_helper_run(char *const argv[], char *const envp[], int timeout,
		  struct sg_answer *answer, char *err, size_t errlen);

/* sg_answer_parse reads the protocol text (NUL-terminated) into *answer. */
int sg_answer_parse(char *text, struct sg_answer *answer, char *err, size_t errlen);

/*
 * sg_spawn_detached starts argv with envp in a new session, its output on /dev/null, and
 * returns at once: the caller never waits for it.
 */
int sg_spawn_detached(char *const argv[], char *const envp[]);

#pragma GCC visibility pop

#endif
