/*
 * btyd.h
 *	  The "buy till you die" models: BG/NBD for purchase counts, Gamma-Gamma
 *	  for spend, and CLV from both.  Shared by bgnbd.c, gamma_gamma.c, clv.c
 *	  and the model-fitting aggregate plumbing in model_fit.c.
 */
#ifndef POST_PURCHASE_BTYD_H
#define POST_PURCHASE_BTYD_H

#include "fmgr.h"

#include "optimize.h"
#include "state_type.h"
#include "summary_set.h"

/* the most parameters a model has */
#define MODEL_MAX_PARAMS 4

typedef struct BgnbdParams
{
	double		r;
	double		alpha;
	double		a;
	double		b;
} BgnbdParams;

typedef struct GammaGammaParams
{
	double		p;
	double		q;
	double		v;
} GammaGammaParams;

/* the state of bgnbd_fit and gamma_gamma_fit */
typedef struct ModelFitState
{
	MemoryContext cxt;
	SummarySet	customers;
} ModelFitState;

extern ModelFitState *model_fit_state(FunctionCallInfo fcinfo, const char *function);

/* model_fit_state, the type of the 1.1 aggregates' state (state_type.h) */
extern const AggStateKind model_fit_kind;
extern double model_fit_weight(FunctionCallInfo fcinfo, int argno);
extern void check_finite(double value, const char *what);
extern double finite_result(double value, const char *function);
extern Datum model_fit_result(FunctionCallInfo fcinfo, const double *theta, int nparams,
							  const OptimizeResult *fit, double customers);

/* model composites <-> parameters, with validation */
extern BgnbdParams bgnbd_params_arg(FunctionCallInfo fcinfo, int argno);
extern GammaGammaParams gamma_gamma_params_arg(FunctionCallInfo fcinfo, int argno);
extern void check_customer(double frequency, double recency, double t);

extern double bgnbd_p_alive_of(const BgnbdParams *m, double x, double tx, double T);
extern double bgnbd_conditional_expected(const BgnbdParams *m, double x, double tx, double T, double horizon);
extern double gamma_gamma_expected_of(const GammaGammaParams *m, double x, double mbar);
extern void check_spend(double frequency, double monetary_value);

#endif							/* POST_PURCHASE_BTYD_H */
