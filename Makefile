# post_purchase: PGXS build, install and every test layer.
#
#   make && make install      build and install into the PostgreSQL of $(PG_CONFIG)
#   make test                 install what is missing, build, install, run every test
#   make demo                 the same, then the CDNOW demo on a throwaway server
#   make bench                the metrics benchmark (test/bench/README.md)
#   make bench-clv            the CLV benchmark against NumPy/SciPy (test/bench/README_clv.md)
#   make bench-tracking       order tracking and customer_metrics (test/bench/README_tracking.md)
#   make bench-journeys       journeys: drain rate, thank-you latency, insert cost (test/bench/README_journeys.md)
#   make bench-soak           30 minutes of mixed load: flat throughput, lag, bloat, memory (test/bench/README_soak.md)
#   make test-ubsan           every test layer against a build with UndefinedBehaviorSanitizer
#   make valgrind             the regression suite against a server under valgrind memcheck
#   make installcheck         pg_regress and isolation tests against a running server
#   make deb                  the Debian packages, into build/deb (debian/, README "Installing")

EXTENSION = post_purchase
# one version, one place: the control file
EXTVERSION := $(shell sed -n "s/^default_version = '\([^']*\)'/\1/p" $(EXTENSION).control)

MODULE_big = post_purchase
OBJS = \
	src/post_purchase.o \
	src/amount.o \
	src/dayset.o \
	src/state_type.o \
	src/nps.o \
	src/survey.o \
	src/rfm.o \
	src/purchase_cycle.o \
	src/rfm_segment.o \
	src/summary_set.o \
	src/optimize.o \
	src/model_fit.o \
	src/bgnbd.o \
	src/gamma_gamma.o \
	src/clv.o \
	src/simulate.o \
	src/tracking.o \
	src/segments.o \
	src/metrics_context.o \
	src/segment_journeys.o \
	src/order_items.o \
	src/trigger_support.o \
	src/worker.o \
	src/worker_wake.o \
	src/worker_status.o \
	src/worker_utility.o \
	src/worker_loop.o \
	src/launcher.o \
	src/journeys.o \
	src/order_journeys.o \
	src/decisions.o \
	src/scores.o \
	src/payload.o \
	src/message_id.o \
	src/progress.o \
	src/answers.o \
	src/affinity.o

# The install script is built from each concern's SQL, in dependency order.
SQL_PARTS = \
	src/post_purchase.sql \
	src/progress.sql \
	src/nps.sql \
	src/survey.sql \
	src/rfm.sql \
	src/purchase_cycle.sql \
	src/rfm_segment.sql \
	src/btyd.sql \
	src/tracking.sql \
	src/customer_metrics.sql \
	src/scores.sql \
	src/segments.sql \
	src/order_items.sql \
	src/affinity.sql \
	src/worker.sql \
	src/outbox.sql \
	src/journeys.sql \
	src/decisions.sql \
	src/answers.sql \
	src/dump.sql

# The current version's script is built; released versions' scripts are
# frozen in sql/ (never edited: a database created at 1.0 keeps what 1.0
# was), and the upgrade scripts lead from each of them to the current one.
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
RELEASED_SCRIPTS = sql/$(EXTENSION)--1.0.sql
DATA = $(RELEASED_SCRIPTS) $(wildcard sql/$(EXTENSION)--*--*.sql)

# the outbox's sender, a service of its own (sender/README.md): installed
# into $(bindir) as post_purchase_sender.py
SCRIPTS = sender/post_purchase_sender.py

PG_CFLAGS = -Werror
# GSL: special functions, the BFGS minimizer and quadrature for the models
SHLIB_LINK = -lgsl -lgslcblas -lm
# make UBSAN=1: built with UndefinedBehaviorSanitizer (make test-ubsan)
ifdef UBSAN
PG_CFLAGS += -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SHLIB_LINK += -fsanitize=undefined
endif

# The public CDNOW data set (README.md, "Data"); never copied into the project.
CDNOW_DIR ?= ../shared/data/cdnow
override CDNOW_DIR := $(abspath $(CDNOW_DIR))
export CDNOW_DIR

REGRESS = nps survey rfm_summary purchase_cycle rfm_segment bgnbd bgnbd_recovery tracking order_items customer_metrics segments journeys decisions bad_input parallel state_types outbox progress answers
# complementary products (src/affinity.sql)
REGRESS += affinity
ifneq ($(wildcard $(CDNOW_DIR)/CDNOW_sample.txt),)
REGRESS += cdnow cdnow_models
else
$(warning CDNOW data not found in $(CDNOW_DIR): the cdnow regression test is skipped)
endif
REGRESS_OPTS = --load-extension=$(EXTENSION)
# The suites' expected output must not depend on the machine's speed: no
# progress NOTICE from a call that happens to take longer than a second
# (src/progress.c); sql/progress.sql and the progress_view spec set their own.
installcheck: export PGOPTIONS += -c post_purchase.progress_notice_interval=-1

ISOLATION = nps_snapshot tracking_inserts tracking_delete_insert tracking_move tracking_backfill \
	tracking_backfill_rr tracking_lock_order journey_claim_race journey_purchase_during_fire journey_disable_mid_batch \
	outbox_claim_race outbox_ack_claim outbox_notify segments_refresh_race journey_claim_footprint \
	segments_refresh_deadlock segments_context_change decisions_claim_race decisions_order_during_batch \
	decisions_rule_change progress_view answers_order_race scores_order_race
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=$(EXTENSION)

EXTRA_CLEAN = output_iso tmp_check test/bench/data

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track headers: rebuild every object when any header changes
$(OBJS): $(wildcard src/*.h)

$(DATA_built): $(SQL_PARTS) $(EXTENSION).control
	cat $(SQL_PARTS) > $@

.PHONY: deps test test-ubsan demo bench bench-clv bench-tracking bench-journeys bench-soak valgrind print-regress pgtapcheck tapcheck

deps:
	@test/install_deps.sh

test: deps all
	$(MAKE) install
	test/run_tests.sh

# every test layer against a build with UndefinedBehaviorSanitizer (test/ubsan/run_ubsan.sh)
test-ubsan: deps all
	test/ubsan/run_ubsan.sh

demo: deps all
	$(MAKE) install
	test/demo/run_demo.sh

bench: deps all
	$(MAKE) install
	test/bench/run_bench.sh

bench-clv: deps all
	$(MAKE) install
	test/bench/run_clv_bench.sh

bench-tracking: deps all
	$(MAKE) install
	test/bench/run_tracking_bench.sh

bench-journeys: deps all
	$(MAKE) install
	test/bench/run_journey_bench.sh

bench-soak: deps all
	$(MAKE) install
	test/bench/run_soak_bench.sh

# refresh_product_affinity() against the bare self-join and the analyst's SQL (test/bench/README_affinity.md)
.PHONY: bench-affinity
bench-affinity: deps all
	$(MAKE) install
	test/bench/run_affinity_bench.sh

# the regression suite against a server under valgrind (test/valgrind/run_valgrind.sh)
valgrind: deps all
	$(MAKE) install
	test/valgrind/run_valgrind.sh

print-regress:
	@echo $(REGRESS)

# pgTAP suites, against the server in the environment (PGHOST, PGPORT, ...)
pgtapcheck:
	test/pgtap/run_pgtap.sh

# Perl TAP tests, which start servers of their own
tapcheck:
	test/t/run_tap.sh

# The Debian packages (README, "Installing"): dpkg-buildpackage with
# debhelper and pg_buildext (debian/), on a copy of the checkout, into
# $(DEB_DIR).  test/deb/run_deb_check.sh installs and tests them.
DEB_DIR ?= build/deb
.PHONY: deb
deb:
	test/deb/build_deb.sh $(DEB_DIR)

# The Citus layer (test/citus/run_citus_check.sh, README "Citus"): a
# coordinator and two workers on the loopback; reported as skipped when
# Citus is not installed (test/citus/build_citus.sh builds it).
.PHONY: citus-check
citus-check:
	test/citus/run_citus_check.sh
