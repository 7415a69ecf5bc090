// libFuzzer target "tiff" (Fuzz/README.md): the function under test is FuzzTargets.tiff.
import FuzzTargets

FuzzTargets.run("tiff")
