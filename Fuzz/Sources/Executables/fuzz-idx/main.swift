// libFuzzer target "idx" (Fuzz/README.md): the function under test is FuzzTargets.idx.
import FuzzTargets

FuzzTargets.run("idx")
