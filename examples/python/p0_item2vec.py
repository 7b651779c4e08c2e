"""P0: item2vec (CBOW) over each user's time-ordered ratings, as seed 000's notebook: the loss
per epoch, then the nearest movies of the most-rated movie, and a map of the vectors."""

import _common
import reelvec

data = _common.data()
epochs = 2 if _common.FAST else 20
run = reelvec.train("cbow", data, config={"train.epochs": epochs})
for e in run.history:
    print(f"epoch {e['epoch']:>3}  train {e['train_loss']:.4f}  val {e.get('val_loss')}")
print(f"vocabulary {len(run.movie_ids)} movies, {run.item_vectors.shape[1]} dimensions")
_common.show(f"nearest to {run.titles[0]}", run.similar(int(run.movie_ids[0]), k=5))
_common.plot(run, "p0_item2vec.png")
