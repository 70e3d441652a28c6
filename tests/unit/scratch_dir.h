/* Scratch directories of the unit tests that extract trees: made under $TMPDIR, removed whole,
 * read-only directories an extraction made included. */
#ifndef PL_TEST_SCRATCH_DIR_H
#define PL_TEST_SCRATCH_DIR_H

/* dir/name into buf (PATH_MAX bytes); fails the test if it does not fit. */
char *join(char *buf, const char *dir, const char *name);

/* A new directory $TMPDIR/<prefix>-<what>-XXXXXX into buf (PATH_MAX bytes). */
void make_temp_dir(char *buf, const char *prefix, const char *what);

/* Removes path and everything below it; fails the test if anything stays. */
void remove_tree(const char *path);

#endif
