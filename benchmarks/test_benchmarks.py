"""Every problem of the chosen suite (--dlcb-suite; quick on a CPU, gpu-quick on a GPU) on our
kernel and on each vendor baseline of its op that can run it here; the cases come from
conftest.py's pytest_generate_tests."""


def test_benchmark(benchmark, dlcb, suite_problem, impl):
    dlcb.run(benchmark, suite_problem, impl)
