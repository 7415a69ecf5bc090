// libFuzzer target "bmp" (Fuzz/README.md): the function under test is FuzzTargets.bmp.
import FuzzTargets

FuzzTargets.run("bmp")
