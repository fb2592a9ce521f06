// Route selection as an Envoy virtual host does it: routes in order, the first whose path prefix and exact header
// matchers all match wins. clear_route_cache from ext_proc simply means "select again with the current headers".
import type { RouteConfig } from "./config.ts";
import type { HeaderList } from "./headers.ts";

export function selectRoute(routes: readonly RouteConfig[], headers: HeaderList): RouteConfig | undefined {
  const path = headers.get(":path") ?? "/";
  return routes.find((r) =>
    path.startsWith(r.match.prefix) && r.match.headers.every((m) => headers.get(m.name) === m.exact)
  );
}
