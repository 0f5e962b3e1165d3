from resnetlab.cli.main import main

raise SystemExit(main())
