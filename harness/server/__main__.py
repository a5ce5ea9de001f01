from harness.server.command import main

raise SystemExit(main())
