// libFuzzer target "npy" (Fuzz/README.md): the function under test is FuzzTargets.npy.
import FuzzTargets

FuzzTargets.run("npy")
