"""P4: residual matrix factorisation over the global, user and movie means, as seed 004's
notebook: train RMSE against the means-only baseline, then recommendations."""

import _common
import reelvec

data = _common.data()
run = reelvec.train("residual-mf", data, config={"train.epochs": 2 if _common.FAST else 10})
m = run.metrics
print(f"train RMSE {m.get('train_rmse')} stars (means only {m.get('baseline_train_rmse')})")
_common.show(f"top 5 for user {int(run.user_ids[0])}", run.recommend(int(run.user_ids[0]), k=5))
_common.plot(run, "p4_residual.png")
