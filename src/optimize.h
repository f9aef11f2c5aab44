/*
 * optimize.h
 *	  Unconstrained minimization for the model fits, on top of GSL.
 */
#ifndef POST_PURCHASE_OPTIMIZE_H
#define POST_PURCHASE_OPTIMIZE_H

/*
 * The objective: returns f(x) and, when gradient is not NULL, fills it.
 * Must return a finite value or +Inf for points outside the domain.
 */
typedef double (*objective_fn) (const double *x, double *gradient, void *arg);

typedef struct OptimizeResult
{
	double		value;			/* f at the minimum found */
	int			iterations;
	bool		converged;		/* the gradient test passed */
} OptimizeResult;

extern OptimizeResult minimize(objective_fn f, void *arg, int n, double *x);

#endif							/* POST_PURCHASE_OPTIMIZE_H */
