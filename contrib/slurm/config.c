/*
 * scan-gate SPANK plugin: the plugstack.conf arguments, strict key=value. An unknown key
 * or a bad value is an error naming it, never a silent default.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scan_gate.h"

static int set_path(char *dst, const char *key, const char *value, char *err, size_t errlen)
{
	if (value[0] != '/') {
		snprintf(err, errlen, "%s=%s: want an absolute path", key, value);
		return -1;
	}
	if (strlen(value) >= PATH_MAX) {
		snprintf(err, errlen, "%s=: path too long", key);
		return -1;
	}
	strcpy(dst, value);
	return 0;
}

static int set_bool(int *dst, const char *key, const char *value, char *err, size_t errlen)
{
	if (!strcmp(value, "yes")) {
		*dst = 1;
	} else if (!strcmp(value, "no")) {
		*dst = 0;
	} else {
		snprintf(err, errlen, "%s=%s: want yes or no", key, value);
		return -1;
	}
	return 0;
}

static int parse_one(struct sg_config *cfg, const char *arg, char *err, size_t errlen)
{
	char key[64];
	const char *eq = strchr(arg, '=');
	const char *value;

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(key)) {
		snprintf(err, errlen, "argument \"%s\": want key=value", arg);
		return -1;
	}
	memcpy(key, arg, eq - arg);
	key[eq - arg] = '\0';
	value = eq + 1;

	if (!strcmp(key, "helper"))
		return set_path(cfg->helper, key, value, err, errlen);
	if (!strcmp(key, "policy"))
		return set_path(cfg->policy, key, value, err, errlen);
	if (!strcmp(key, "scan_gate"))
		return set_path(cfg->scan_gate, key, value, err, errlen);
	if (!strcmp(key, "batch"))
		return set_bool(&cfg->batch, key, value, err, errlen);
	if (!strcmp(key, "verbose"))
		return set_bool(&cfg->verbose, key, value, err, errlen);
	if (!strcmp(key, "timeout")) {
		char *end;
		long seconds;

		errno = 0;
		seconds = strtol(value, &end, 10);
		if (errno || *end || end == value || seconds < 1 || seconds > 86400) {
			snprintf(err, errlen, "timeout=%s: want seconds, 1 to 86400", value);
			return -1;
		}
		cfg->timeout = (int)seconds;
		return 0;
	}
	if (!strcmp(key, "on_error")) {
		if (!strcmp(value, "block") || !strcmp(value, "allow")) {
			cfg->on_error_block = !strcmp(value, "block");
			return 0;
		}
		snprintf(err, errlen, "on_error=%s: want block or allow", value);
		return -1;
	}
	if (!strcmp(key, "watch")) {
		if (!strcmp(value, "off"))
			cfg->watch = SG_WATCH_OFF;
		else if (!strcmp(value, "unresolved"))
			cfg->watch = SG_WATCH_UNRESOLVED;
		else if (!strcmp(value, "all"))
			cfg->watch = SG_WATCH_ALL;
		else {
			snprintf(err, errlen, "watch=%s: want off, unresolved or all", value);
			return -1;
		}
		return 0;
	}
	if (!strcmp(key, "watch_action")) {
		if (strcmp(value, "log") && strcmp(value, "notify") && strcmp(value, "cancel")) {
			snprintf(err, errlen, "watch_action=%s: want log, notify or cancel",
				 value);
			return -1;
		}
		strcpy(cfg->watch_action, value);
		return 0;
	}
	snprintf(err, errlen, "unknown key \"%s\" (known: helper, policy, scan_gate, timeout, "
		 "on_error, watch, watch_action, batch, verbose)", key);
	return -1;
}

int sg_config_parse(struct sg_config *cfg, int ac, char **av, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->helper, SG_DEFAULT_HELPER);
	strcpy(cfg->scan_gate, SG_DEFAULT_SCAN_GATE);
	cfg->timeout = SG_DEFAULT_TIMEOUT;
	cfg->on_error_block = 1;
	cfg->watch = SG_WATCH_UNRESOLVED;
	cfg->batch = 1;

	for (int i = 0; i < ac; i++) {
		if (parse_one(cfg, av[i], err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* The values the helper's ParseOption accepts: a mode, "report", or both. */
int sg_option_valid(const char *value)
{
	char copy[64], *word, *save = NULL;
	int modes = 0;

	if (!value || !*value || strlen(value) >= sizeof(copy) || value[0] == ',' ||
	    value[strlen(value) - 1] == ',' || strstr(value, ",,"))
		return 0;
	strcpy(copy, value);
	for (word = strtok_r(copy, ",", &save); word; word = strtok_r(NULL, ",", &save)) {
		if (!strcmp(word, "report"))
			continue;
		if (strcmp(word, "enforce") && strcmp(word, "warn") && strcmp(word, "audit"))
			return 0;
		if (++modes > 1)
			return 0;
	}
	return 1;
}
