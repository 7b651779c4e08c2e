//! The reelvec models: CBOW and skip-gram item2vec (P0), co-occurrence factorisation (P1), biased
//! MF (P2), the sigmoid dot-product recommender (P3) and residual MF (P4), each with its
//! notebook defaults, a hand-written forward and backward pass, and checkpoints.
