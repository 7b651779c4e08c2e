"""P3: the sigmoid dot-product recommender on min-max scaled ratings, as seed 003's notebook:
top-N for a user (rated movies excluded) and a new user folded in from a few ratings."""

import _common
import reelvec

data = _common.data()
run = reelvec.train("sigmoid-mf", data, config={"train.epochs": 2 if _common.FAST else 10})
print(f"val RMSE {run.metrics.get('val_rmse')} stars")
user = int(run.user_ids[0])
_common.show(f"top 5 for user {user}", run.recommend(user, k=5))
liked = {int(run.movie_ids[0]): 5.0, int(run.movie_ids[1]): 4.5}
_common.show("top 5 for a new user", run.fold_in(liked, k=5))
_common.plot(run, "p3_recommender.png")
