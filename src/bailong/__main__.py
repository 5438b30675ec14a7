from bailong.cli import main

main()
