/* fixture_import: the importer tests' check of a refused import (the one
 * line names `what`, and neither output nor a temporary directory is left). */
#ifndef SIAMESE_FIXTURE_IMPORT_H
#define SIAMESE_FIXTURE_IMPORT_H

#include <string.h>

#include "../io/import.h"
#include "fixture_files.h"
#include "test.h"

static inline void expect_fail(ImportOptions *o, const char *what, const char *label) {
    ImportResult r;
    Err e = {""};
    int rc = import_run(o, &r, &e);
    CHECK(rc == -1 && strstr(e.msg, what) && !strchr(e.msg, '\n'), "%s: want an error naming '%s', got: %s",
          label, what, rc ? e.msg : "success");
    CHECK(!fixture_exists(o->out) && (!o->test_out || !fixture_exists(o->test_out)) &&
              !fixture_leftover_tmp(),
          "%s: nothing left behind", label);
}

#endif
