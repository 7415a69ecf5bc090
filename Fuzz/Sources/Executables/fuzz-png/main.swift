// libFuzzer target "png" (Fuzz/README.md): the function under test is FuzzTargets.png.
import FuzzTargets

FuzzTargets.run("png")
