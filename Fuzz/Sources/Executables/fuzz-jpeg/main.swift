// libFuzzer target "jpeg" (Fuzz/README.md): the function under test is FuzzTargets.jpeg.
import FuzzTargets

FuzzTargets.run("jpeg")
