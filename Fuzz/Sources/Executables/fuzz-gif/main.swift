// libFuzzer target "gif" (Fuzz/README.md): the function under test is FuzzTargets.gif.
import FuzzTargets

FuzzTargets.run("gif")
