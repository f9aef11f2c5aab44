/* src/worker.c: placeholder, filled in by the issue 5 work */
#include "postgres.h"
