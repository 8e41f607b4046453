/*
 * scan-gate SPANK plugin: the SPANK entry points.
 *
 *   slurm_spank_init           all contexts: read plugstack.conf, register --scan-gate
 *   slurm_spank_init_post_opt  slurmstepd, as root, once per step: who runs it, and
 *                              what (every step but Slurm's own is asked about)
 *   slurm_spank_user_init      slurmstepd, once per step, in the step's working directory,
 *                              privileges dropped only for the moment: ask the helper,
 *                              which runs as root
 *   slurm_spank_task_post_fork slurmstepd, as root, per task: start the watch if needed
 *   slurm_spank_task_init      the task, as the job's user, before exec: enforce
 *
 * Only task_init ever returns an error in slurmstepd: an error there fails the step and
 * leaves the node alone, while errors from init, init_post_opt or user_init can drain the
 * node.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

#include "scan_gate.h"

SPANK_PLUGIN(scan_gate, 1);

/* The PATH every child gets; the helper finds squeue and friends through it. */
#define SAFE_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static struct sg_config config;
/* Set when plugstack.conf is wrong: every step fails with it, the node stays up. */
static char config_error[512];
/* The value of --scan-gate, when given. */
static char user_option[64];

/* What init_post_opt and user_init found out about this step. */
static struct {
	int wanted;            /* ask the helper about this step */
	uint32_t step_id;
	int argc;
	char **argv;           /* S_JOB_ARGV: slurmstepd's own, valid for the step */
	int asked;             /* the helper was asked */
	int failed;            /* ...and gave no answer: why is in error */
	char error[1024];
	struct sg_answer answer;
	int watch;             /* start the watch for each task */
	uint32_t job_id;
	uid_t uid;
	char user[256];
} step;

static int option_callback(int val, const char *optarg, int remote)
{
	(void)val;
	if (!sg_option_valid(optarg)) {
		if (!remote) {
			slurm_error("scan-gate: --scan-gate=%s: want enforce, warn or audit, "
				    "optionally with \",report\", or report",
				    optarg ? optarg : "");
			return -1;
		}
		/* Cannot happen past srun/sbatch; the helper reports it to the user. */
	}
	snprintf(user_option, sizeof(user_option), "%s", optarg ? optarg : "");
	return 0;
}

static struct spank_option scan_gate_option = {
	"scan-gate", "MODE",
	"Check container images more strictly than the site policy for this job (enforce, "
	"warn or audit), and/or report every image's verdict (report, e.g. enforce,report). "
	"It never makes the check weaker.",
	1, 0, option_callback
};

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	spank_context_t context = spank_context();
	int rc;

	if (sg_config_parse(&config, ac, av, config_error, sizeof(config_error)) < 0) {
		slurm_error("scan-gate: plugstack.conf: %s", config_error);
		/* srun, sbatch and salloc refuse to run, so that the admin sees it at once; in
		 * slurmstepd each task fails instead (an error here would drain the node). */
		if (context == S_CTX_LOCAL || context == S_CTX_ALLOCATOR)
			return -1;
		return 0;
	}
	if (context != S_CTX_LOCAL && context != S_CTX_ALLOCATOR && context != S_CTX_REMOTE)
		return 0;
	rc = spank_option_register(sp, &scan_gate_option);
	if (rc != ESPANK_SUCCESS)
		slurm_error("scan-gate: registering --scan-gate: %s", spank_strerror(rc));
	return 0;
}

/* blocks reports whether an action stops the task; an action this plugin does not know
 * stops it too. */
static int blocks(const char *action)
{
	return strcmp(action, "allow") && strcmp(action, "audit") && strcmp(action, "warn");
}

/* The steps that run no user command: nothing to check. */
static int is_internal_step(uint32_t step_id)
{
	return step_id == SLURM_EXTERN_CONT || step_id == SLURM_INTERACTIVE_STEP ||
	       step_id == SLURM_PENDING_STEP;
}

/* strlist is a NULL-terminated list of strings under construction. */
struct strlist {
	char **items;
	int len;
};

static void push(struct strlist *l, const char *s)
{
	char **items = realloc(l->items, (size_t)(l->len + 2) * sizeof(char *));

	if (!items)
		return;
	l->items = items;
	l->items[l->len++] = strdup(s ? s : "");
	l->items[l->len] = NULL;
}

static void pushf(struct strlist *l, const char *format, unsigned long long value)
{
	char buf[32];

	snprintf(buf, sizeof(buf), format, value);
	push(l, buf);
}

static void free_list(struct strlist *l)
{
	for (int i = 0; i < l->len; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->len = 0;
}

/* child_env is the environment of the helper and the watch: PATH, and SLURM_CONF when
 * slurmstepd has one, so that squeue and scancel find the cluster. Never the job's. */
static void child_env(struct strlist *env)
{
	const char *conf = getenv("SLURM_CONF");

	push(env, SAFE_PATH);
	if (conf) {
		char buf[PATH_MAX + 16];

		snprintf(buf, sizeof(buf), "SLURM_CONF=%s", conf);
		push(env, buf);
	}
}

static void ask_helper(spank_t sp, const char *cwd)
{
	struct strlist args = { 0 }, env = { 0 };
	gid_t gid = 0, *gids = NULL;
	int ngids = 0;
	int batch = step.step_id == SLURM_BATCH_SCRIPT;

	spank_get_item(sp, S_JOB_GID, &gid);
	push(&args, config.helper);
	push(&args, "step");
	pushf(&args, "--job=%llu", step.job_id);
	pushf(&args, "--step=%llu", step.step_id);
	pushf(&args, "--uid=%llu", step.uid);
	pushf(&args, "--gid=%llu", gid);
	if (spank_get_item(sp, S_JOB_SUPPLEMENTARY_GIDS, &gids, &ngids) == ESPANK_SUCCESS &&
	    ngids > 0) {
		char *list = calloc((size_t)ngids, 12);

		if (list) {
			for (int i = 0; i < ngids; i++)
				sprintf(list + strlen(list), "%s%u", i ? "," : "", gids[i]);
			push(&args, "--gids");
			push(&args, list);
			free(list);
		}
	}
	if (cwd) {
		push(&args, "--cwd");
		push(&args, cwd);
	}
	if (config.policy[0]) {
		push(&args, "--policy");
		push(&args, config.policy);
	}
	if (user_option[0]) {
		push(&args, "--option");
		push(&args, user_option);
	}
	if (config.watch != SG_WATCH_OFF)
		push(&args, "--watching");
	if (config.verbose)
		push(&args, "-v");
	if (batch) {
		push(&args, "--batch-script");
		push(&args, step.argv[0]);
	} else {
		push(&args, "--");
		for (int i = 0; i < step.argc; i++)
			push(&args, step.argv[i]);
	}
	child_env(&env);

	step.asked = 1;
	if (sg_helper_run(args.items, env.items, config.timeout, &step.answer, step.error,
			  sizeof(step.error)) < 0) {
		step.failed = 1;
		/* For slurmd's log; task_init tells the user. */
		slurm_info("scan-gate: job %u step %u: %s", step.job_id, step.step_id,
			   step.error);
	} else {
		step.watch = step.answer.watch;
		slurm_verbose("scan-gate: job %u step %u: %s", step.job_id, step.step_id,
			      step.answer.action);
	}
	free_list(&args);
	free_list(&env);
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	(void)ac;
	(void)av;
	if (!spank_remote(sp) || config_error[0])
		return 0;
	if (spank_get_item(sp, S_JOB_STEPID, &step.step_id) != ESPANK_SUCCESS ||
	    is_internal_step(step.step_id))
		return 0;
	spank_get_item(sp, S_JOB_ID, &step.job_id);
	spank_get_item(sp, S_JOB_UID, &step.uid);
	if (getpwuid_r(step.uid, &pw, buf, sizeof(buf), &found) == 0 && found)
		snprintf(step.user, sizeof(step.user), "%s", pw.pw_name);

	step.watch = config.watch == SG_WATCH_ALL;
	if (spank_get_item(sp, S_JOB_ARGV, &step.argc, &step.argv) != ESPANK_SUCCESS ||
	    step.argc < 1)
		return 0;
	/*
	 * Every step is asked about: no quick look at the text here can tell a launch from
	 * anything else, since the shell removes quoting (a\pptainer, apptain""er), an image
	 * may have any name (.img, .sqfs, a sandbox directory), and a step may run a script.
	 * The helper answers a step that launches nothing in tens of milliseconds.
	 */
	step.wanted = step.step_id != SLURM_BATCH_SCRIPT || config.batch;
	return 0;
}

/*
 * user_init runs in the step's working directory, the one its tasks start in, which is
 * where relative image paths lead; slurmstepd has set its effective ids to the job's user
 * for the moment. The helper's child takes back root (sg_helper_run) before it runs.
 */
int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	char cwd[PATH_MAX];

	(void)ac;
	(void)av;
	if (!spank_remote(sp) || config_error[0] || !step.wanted)
		return 0;
	ask_helper(sp, getcwd(cwd, sizeof(cwd)) ? cwd : NULL);
	if (config.watch == SG_WATCH_ALL)
		step.watch = 1;
	if (config.watch == SG_WATCH_OFF)
		step.watch = 0;
	return 0;
}

int slurm_spank_task_post_fork(spank_t sp, int ac, char **av)
{
	struct strlist args = { 0 }, env = { 0 };
	pid_t pid = 0;

	(void)ac;
	(void)av;
	if (!spank_remote(sp) || config_error[0] || !step.watch)
		return 0;
	if (step.asked && (step.failed ? config.on_error_block : blocks(step.answer.action)))
		return 0; /* the task will not start */
	if (spank_get_item(sp, S_TASK_PID, &pid) != ESPANK_SUCCESS || pid <= 0)
		return 0;

	push(&args, config.scan_gate);
	push(&args, "watch");
	pushf(&args, "--pid=%llu", (unsigned long long)pid);
	pushf(&args, "--job=%llu", step.job_id);
	if (step.user[0]) {
		push(&args, "--user");
		push(&args, step.user);
	}
	if (config.policy[0]) {
		push(&args, "--policy");
		push(&args, config.policy);
	}
	if (config.watch_action[0]) {
		push(&args, "--action");
		push(&args, config.watch_action);
	}
	child_env(&env);
	if (sg_spawn_detached(args.items, env.items) < 0)
		slurm_error("scan-gate: job %u: starting the watch of task %d: %m", step.job_id,
			    (int)pid);
	free_list(&args);
	free_list(&env);
	return 0;
}

/* unchanged reports whether st is the image as the helper checked it: the same file, of
 * the same size, not written to nor changed since (a rewrite in place keeps the inode; the
 * change time, which no user can set, moves). */
static int unchanged(const struct stat *st, const struct sg_image *im)
{
	long long mtime_ns = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
	long long ctime_ns = (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;

	return st->st_dev == im->dev && st->st_ino == im->ino && st->st_size == im->size &&
	       mtime_ns == im->mtime_ns && ctime_ns == im->ctime_ns;
}

/* verify_images opens each checked image as the job's user, from the task's working
 * directory, and makes sure it is the file the helper checked, unchanged. */
static int verify_images(int report)
{
	for (int i = 0; i < step.answer.nimages; i++) {
		struct sg_image *im = &step.answer.images[i];
		struct stat st;
		int fd = open(im->path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

		if (fd < 0) {
			if (report)
				slurm_error("scan-gate: cannot open image %s: %m", im->path);
			return -1;
		}
		if (fstat(fd, &st) < 0 || !unchanged(&st, im)) {
			close(fd);
			if (!report)
				return -1;
			slurm_error("scan-gate: image %s is not the file that was checked: it "
				    "was replaced or rewritten while the step started, so the step "
				    "may not start; start the step again once the image stays as it "
				    "is", im->path);
			return -1;
		}
		close(fd);
	}
	return 0;
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	int task_id = 0, first;

	(void)ac;
	(void)av;
	if (!spank_remote(sp))
		return 0;
	spank_get_item(sp, S_TASK_ID, &task_id);
	first = task_id == 0; /* one copy of each message per node */

	if (config_error[0]) {
		if (first)
			slurm_error("scan-gate: this node's plugstack.conf is wrong (%s); tell "
				    "your admins", config_error);
		return -1;
	}
	if (!step.asked)
		return 0;
	if (step.failed) {
		if (!config.on_error_block)
			return 0;
		if (first)
			slurm_error("scan-gate: the image check failed on this node, so the step "
				    "may not start: %s; try again in a few minutes, and tell your "
				    "admins if it keeps failing", step.error);
		return -1;
	}
	if (verify_images(first) < 0)
		return -1;

	if (blocks(step.answer.action)) {
		for (int i = 0; first && i < step.answer.nmessages; i++)
			slurm_error("scan-gate: %s", step.answer.messages[i]);
		return -1;
	}
	for (int i = 0; first && i < step.answer.nmessages; i++)
		fprintf(stderr, "scan-gate: %s\n", step.answer.messages[i]);
	return 0;
}
