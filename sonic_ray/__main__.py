from sonic_ray.cli import main

raise SystemExit(main())
