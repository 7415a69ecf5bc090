// libFuzzer target "csv" (Fuzz/README.md): the function under test is FuzzTargets.csv.
import FuzzTargets

FuzzTargets.run("csv")
