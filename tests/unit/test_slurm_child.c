/* The forked child's questions (slurm_child.c) against stand-ins for libslurmfull's symbols,
 * exported by this program (-rdynamic) where the plugin's dlsym(RTLD_DEFAULT) finds them: only
 * a clear answer may mark a job over; a crash, a fatal exit, an error or an unclear answer is
 * "cannot tell". (The real library is exercised by tests/integration/test_releases.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "slurm_child.h"

enum { STUB_OK, STUB_CRASH, STUB_FATAL, STUB_NO_CONF };
static int stub_mode;

int slurm_conf_reinit(const char *file);
int slurm_conf_reinit(const char *file)
{
	(void)file;
	return stub_mode == STUB_NO_CONF ? -1 : 0;
}

void slurm_init(const char *conf)
{
	(void)conf;
	if (stub_mode == STUB_FATAL)
		exit(1); /* what Slurm's fatal() does */
}

static job_info_msg_t *one_record(uint32_t job_id, uint32_t state)
{
	job_info_msg_t *msg = calloc(1, sizeof(*msg));

	msg->record_count = 1;
	msg->job_array = calloc(1, sizeof(slurm_job_info_t));
	msg->job_array[0].job_id = job_id;
	msg->job_array[0].job_state = state;
	return msg;
}

/* Job ids name the answer slurmctld gives. */
int slurm_load_job(job_info_msg_t **resp, uint32_t job_id, uint16_t show_flags)
{
	(void)show_flags;
	if (stub_mode == STUB_CRASH)
		raise(SIGKILL);
	switch (job_id) {
	case 1:
		*resp = one_record(1, JOB_RUNNING);
		return 0;
	case 2:
		errno = ESLURM_INVALID_JOB_ID;
		return -1;
	case 3:
		errno = SLURM_COMMUNICATIONS_CONNECTION_ERROR;
		return -1;
	case 4:
		*resp = calloc(1, sizeof(**resp));
		return 0;
	case 5:
		*resp = one_record(99, JOB_COMPLETE);
		return 0;
	case 6:
		*resp = one_record(6, JOB_COMPLETE);
		return 0;
	case 7:
		*resp = one_record(7, JOB_COMPLETE | JOB_COMPLETING);
		return 0;
	default:
		*resp = one_record(job_id, JOB_PENDING);
		return 0;
	}
}

void slurm_free_job_info_msg(job_info_msg_t *msg)
{
	if (msg)
		free(msg->job_array);
	free(msg);
}

static const uint32_t ids[] = {1, 2, 3, 4, 5, 6, 7, 8};
#define N_IDS (sizeof(ids) / sizeof(ids[0]))

static void only_clear_answers_decide(void **state)
{
	enum pl_job_fate f[N_IDS];
	char err[256];

	(void)state;
	stub_mode = STUB_OK;
	assert_int_equal(pl_slurm_job_fates(ids, N_IDS, f, err, sizeof(err)), N_IDS);
	assert_int_equal(f[0], PL_JOB_ALIVE);	/* running */
	assert_int_equal(f[1], PL_JOB_OVER);	/* invalid job id: purged */
	assert_int_equal(f[2], PL_JOB_UNKNOWN); /* slurmctld not reached */
	assert_int_equal(f[3], PL_JOB_UNKNOWN); /* an empty answer */
	assert_int_equal(f[4], PL_JOB_UNKNOWN); /* another job's record */
	assert_int_equal(f[5], PL_JOB_OVER);	/* complete */
	assert_int_equal(f[6], PL_JOB_ALIVE);	/* completing: its epilog may still run */
	assert_int_equal(f[7], PL_JOB_ALIVE);	/* pending */
}

static void all_unknown(int mode, const char *why)
{
	enum pl_job_fate f[N_IDS];
	char err[256];

	stub_mode = mode;
	assert_int_equal(pl_slurm_job_fates(ids, N_IDS, f, err, sizeof(err)), 0);
	for (size_t i = 0; i < N_IDS; i++)
		assert_int_equal(f[i], PL_JOB_UNKNOWN);
	assert_non_null(strstr(err, why));
}

static void a_crash_is_cannot_tell(void **state)
{
	(void)state;
	all_unknown(STUB_CRASH, "killed by signal 9");
}

static void a_fatal_is_cannot_tell(void **state)
{
	(void)state;
	all_unknown(STUB_FATAL, "exited with status 1");
}

static void no_configuration_is_cannot_tell(void **state)
{
	(void)state;
	all_unknown(STUB_NO_CONF, "could not read slurm.conf");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(only_clear_answers_decide),
	    cmocka_unit_test(a_crash_is_cannot_tell),
	    cmocka_unit_test(a_fatal_is_cannot_tell),
	    cmocka_unit_test(no_configuration_is_cannot_tell),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
