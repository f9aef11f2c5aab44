/*
 * optimize.c
 *	  Unconstrained minimization for the model fits: GSL's BFGS (the
 *	  "vector_bfgs2" minimizer, Fletcher's line search) with the analytic
 *	  gradients the models provide.  Parameters are fitted on the log scale,
 *	  which keeps them positive without constraints.
 */
#include "postgres.h"

#include <math.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>

#include "miscadmin.h"

#include "optimize.h"

#define OPTIMIZE_MAX_ITERATIONS 1000
/*
 * The objectives are means per customer, so the tolerances are scale-free.
 * BFGS aims for the tight one; its line search can stall short of that in
 * floating-point noise on large data sets, and a gradient under the loose one
 * is still a maximum far inside the parameters' standard errors.
 */
#define OPTIMIZE_GRADIENT_TOLERANCE 1e-7
#define OPTIMIZE_CONVERGED_TOLERANCE 1e-5
#define OPTIMIZE_FIRST_STEP 0.1
#define OPTIMIZE_LINE_TOLERANCE 0.1

#define OPTIMIZE_MAX_PARAMS 8

/*
 * The objective and its last evaluation: GSL's line search often asks for
 * the gradient at the point whose value it has just computed, and each
 * evaluation is a pass over every customer summary.
 */
typedef struct Problem
{
	objective_fn f;
	void	   *arg;
	int			n;
	bool		has_last;
	bool		last_has_gradient;
	double		last_x[OPTIMIZE_MAX_PARAMS];
	double		last_f;
	double		last_gradient[OPTIMIZE_MAX_PARAMS];
} Problem;

static bool
is_last_point(const Problem *problem, const gsl_vector *x)
{
	if (!problem->has_last)
		return false;
	for (int i = 0; i < problem->n; i++)
		if (gsl_vector_get(x, i) != problem->last_x[i])
			return false;
	return true;
}

static void
remember_point(Problem *problem, const gsl_vector *x, double f, const double *gradient)
{
	for (int i = 0; i < problem->n; i++)
	{
		problem->last_x[i] = gsl_vector_get(x, i);
		if (gradient)
			problem->last_gradient[i] = gradient[i];
	}
	problem->last_f = f;
	problem->last_has_gradient = gradient != NULL;
	problem->has_last = true;
}

static double
problem_f(const gsl_vector *x, void *params)
{
	Problem    *problem = params;
	double		f;

	if (is_last_point(problem, x))
		return problem->last_f;
	f = problem->f(gsl_vector_const_ptr(x, 0), NULL, problem->arg);
	remember_point(problem, x, f, NULL);
	return f;
}

static void
problem_fdf(const gsl_vector *x, void *params, double *f, gsl_vector *g)
{
	Problem    *problem = params;

	if (is_last_point(problem, x) && problem->last_has_gradient)
	{
		*f = problem->last_f;
		for (int i = 0; i < problem->n; i++)
			gsl_vector_set(g, i, problem->last_gradient[i]);
		return;
	}
	*f = problem->f(gsl_vector_const_ptr(x, 0), gsl_vector_ptr(g, 0), problem->arg);
	remember_point(problem, x, *f, gsl_vector_const_ptr(g, 0));
}

static void
problem_df(const gsl_vector *x, void *params, gsl_vector *g)
{
	double		ignored;

	problem_fdf(x, params, &ignored, g);
}

/*
 * Minimize f from the start point x (n values), leaving the minimum found in x.
 * A run that stalls is restarted from where it stopped, since BFGS sometimes
 * stops early when its line search meets a flat stretch.
 */
OptimizeResult
minimize(objective_fn f, void *arg, int n, double *x)
{
	Problem		problem = {f, arg, n, false};
	gsl_multimin_function_fdf fdf = {problem_f, problem_df, problem_fdf, (size_t) n, &problem};
	gsl_multimin_fdfminimizer *s;
	gsl_vector *start = gsl_vector_alloc(n);
	OptimizeResult result = {0, 0, false};
	int			restarts = 0;

	if (n > OPTIMIZE_MAX_PARAMS)
		elog(ERROR, "minimize supports at most %d parameters", OPTIMIZE_MAX_PARAMS);
	if (start == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	s = gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, n);
	if (s == NULL)
	{
		gsl_vector_free(start);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}

	PG_TRY();
	{
		for (;;)
		{
			int			status;

			for (int i = 0; i < n; i++)
				gsl_vector_set(start, i, x[i]);
			gsl_multimin_fdfminimizer_set(s, &fdf, start, OPTIMIZE_FIRST_STEP, OPTIMIZE_LINE_TOLERANCE);
			do
			{
				CHECK_FOR_INTERRUPTS();
				result.iterations++;
				status = gsl_multimin_fdfminimizer_iterate(s);
				if (status != GSL_SUCCESS)
					break;
				status = gsl_multimin_test_gradient(s->gradient, OPTIMIZE_GRADIENT_TOLERANCE);
			} while (status == GSL_CONTINUE && result.iterations < OPTIMIZE_MAX_ITERATIONS);

			for (int i = 0; i < n; i++)
				x[i] = gsl_vector_get(s->x, i);
			result.value = s->f;
			if (gsl_multimin_test_gradient(s->gradient, OPTIMIZE_GRADIENT_TOLERANCE) == GSL_SUCCESS ||
				restarts++ >= 3 || result.iterations >= OPTIMIZE_MAX_ITERATIONS)
				break;
		}
	}
	PG_FINALLY();
	{
		result.converged = gsl_multimin_test_gradient(s->gradient, OPTIMIZE_CONVERGED_TOLERANCE) == GSL_SUCCESS;
		gsl_multimin_fdfminimizer_free(s);
		gsl_vector_free(start);
	}
	PG_END_TRY();
	return result;
}
