"""P2: biased matrix factorisation with a sigmoid range, as seed 002's notebook: validation
MSE per epoch, RMSE in stars, the lowest and highest movie biases, neighbours."""

import _common
import reelvec

data = _common.data()
run = reelvec.train("mf", data, config={"train.epochs": 2 if _common.FAST else 5})
for e in run.history:
    print(f"epoch {e['epoch']:>3}  train {e['train_loss']:.4f}  val {e.get('val_loss')}")
m = run.metrics
print(f"val RMSE {m.get('val_rmse')} stars  MAE {m.get('val_mae')}")
for row in (m.get("highest_bias") or [])[:5]:
    print(f"  high bias {row['score']:7.4f}  {row['title']}")
_common.show(f"nearest to {run.titles[0]}", run.similar(int(run.movie_ids[0]), k=5))
_common.plot(run, "p2_mf.png")
