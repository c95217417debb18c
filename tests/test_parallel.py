import logging

from slamfw.execution.executor import chunks, effective_n_jobs, parallel_map


def _square_plus(x, offset=0):
    return x * x + offset


def test_results_in_order_with_shared_args_and_callbacks():
    seen = []
    for n_jobs in (1, 2):
        seen.clear()
        out = parallel_map(_square_plus, [(i,) for i in range(7)], n_jobs=n_jobs, shared={"offset": 1},
                           progress=False, on_result=lambda i, r: seen.append((i, r)))
        assert out == [i * i + 1 for i in range(7)]
        assert seen == list(enumerate(out))


def test_progress_is_logged_without_a_terminal(caplog):
    with caplog.at_level(logging.INFO, logger="slamfw.parallel"):
        parallel_map(_square_plus, [(i,) for i in range(20)], n_jobs=1, desc="work")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("work:")]
    assert len(lines) == 10 and "20/20 tasks (100%)" in lines[-1]


def test_chunks_and_n_jobs():
    assert chunks(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert chunks(0, 3) == []
    assert effective_n_jobs(1) == 1 and effective_n_jobs(0) == 1 and effective_n_jobs(-1) >= 1
    assert effective_n_jobs(-1000) == 1
