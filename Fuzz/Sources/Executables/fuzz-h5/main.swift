// libFuzzer target "h5" (Fuzz/README.md): the function under test is FuzzTargets.h5.
import FuzzTargets

FuzzTargets.run("h5")
