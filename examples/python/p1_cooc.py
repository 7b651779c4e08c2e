"""P1: co-occurrence factorisation of the liked-together matrix, as seed 001's notebook: the
cost against the rank-k reference, then neighbours."""

import _common
import reelvec

data = _common.data()
run = reelvec.train("cooc", data, config={"model.steps": 30 if _common.FAST else 300})
m = run.metrics
print(f"masked cost {m.get('final_cost')}  reference {m.get('reference_masked_cost')}  "
      f"ratio {m.get('ratio_to_reference_masked')}")
_common.show(f"nearest to {run.titles[0]}", run.similar(int(run.movie_ids[0]), k=5))
_common.plot(run, "p1_cooc.png")
