from . import main

main(prog="python -m isvs_triton.train")
