// The live dashboard in a real browser: `tollgate run` (bin/tollgate, as a user starts it) serving Envoy AI Gateway's
// token rate limit example in front of a fake provider, its admin page opened in headless Chromium (the Debian
// package, driven by playwright-core). The page must load with its charts and nothing from outside the admin port,
// follow the traffic sent, and leave a screenshot in test-artifacts/dashboard.png.
//
// Chromium missing is a failure that says so; TOLLGATE_SKIP_BROWSER=1 ignores the test instead.
import { chromium, type Page } from "playwright-core";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { TOLLGATE } from "./support/process.ts";
import { startFakeUpstream } from "./support/fake_upstream.ts";
import { freePorts, pollUntil } from "./support/nats_server.ts";

/** The Debian package's binary; TOLLGATE_CHROMIUM points elsewhere. */
const CHROMIUM = Deno.env.get("TOLLGATE_CHROMIUM") ?? "/usr/bin/chromium";
const ARTIFACTS = new URL("../test-artifacts/", import.meta.url).pathname;
const SCREENSHOT = `${ARTIFACTS}dashboard.png`;
const SKIP = Deno.env.get("TOLLGATE_SKIP_BROWSER") === "1";
if (SKIP) {
  console.log(`dashboard_browser_test: ignored because TOLLGATE_SKIP_BROWSER=1 (it needs Chromium at ${CHROMIUM})`);
}

const EXAMPLE = new URL("../testdata/resources/token_ratelimit/token_ratelimit.yaml", import.meta.url).pathname;
/** Each answer reports 5 input and 3 output tokens; the example allows 10 input tokens an hour per x-user-id. */
const USERS = ["ana", "ben", "cho", "dev", "eli", "fay"];

function chromiumInstalled(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

async function startRun(config: string) {
  const [port, admin] = freePorts(2);
  const child = new Deno.Command(TOLLGATE, {
    args: ["run", config, "--listen", `127.0.0.1:${port}`, "--admin", `127.0.0.1:${admin}`, "--access-log", "off"],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: Deno.env.get("HOME") ?? "/tmp" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let banner = "";
  while (!banner.includes("Try it:")) {
    const { value, done } = await stderr.read();
    if (done) throw new Error(`tollgate run exited early:\n${banner}`);
    banner += value;
  }
  // Keep reading both pipes so the child never blocks on a full one.
  const draining = Promise.all([
    (async () => {
      while (!(await stderr.read()).done) { /* drain */ }
    })(),
    child.stdout.pipeTo(new WritableStream()),
  ]);
  return { child, port: port!, admin: admin!, banner, draining };
}

function text(page: Page, selector: string): Promise<string> {
  return page.locator(selector).first().innerText();
}

Deno.test({
  name: "the dashboard of tollgate run loads its charts in Chromium, follows the traffic sent, and is screenshotted",
  ignore: SKIP,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    if (!chromiumInstalled()) {
      throw new Error(
        `Chromium is not installed at ${CHROMIUM} (Debian package "chromium"): the dashboard browser test needs it. ` +
          "Install it (apt-get install chromium), or set TOLLGATE_SKIP_BROWSER=1 to ignore this test.",
      );
    }
    await using upstream = await startFakeUpstream((r) =>
      Response.json({
        id: "c",
        object: "chat.completion",
        created: 1,
        model: JSON.parse(r.body).model,
        choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
        usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
      })
    );
    const dir = await Deno.makeTempDir({ prefix: "tollgate-dashboard-" });
    const example = await Deno.readTextFile(EXAMPLE);
    await Deno.writeTextFile(`${dir}/gateway.yaml`, example.replace("port: 18080", `port: ${upstream.port}`));
    const run = await startRun(`${dir}/gateway.yaml`);
    const dashboardUrl = `http://127.0.0.1:${run.admin}/`;
    assertMatch(run.banner, new RegExp(`Dashboard: ${dashboardUrl.replaceAll(".", "\\.")}\\n`));

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
      const problems: string[] = [];
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      page.on("console", (m) => m.type() === "error" && problems.push(`console error: ${m.text()}`));
      // Offline: anything but the admin port is refused and remembered.
      const outside: string[] = [];
      await page.route("**/*", (route) => {
        const url = route.request().url();
        if (url.startsWith(`http://127.0.0.1:${run.admin}/`)) return route.continue();
        outside.push(url);
        return route.abort();
      });

      await page.goto(`${dashboardUrl}?every=300`);
      await page.waitForSelector("body[data-updated]", { timeout: 15_000 });
      for (const chart of ["traffic", "tokens", "latency", "errors"]) {
        assertEquals(await page.locator(`svg[data-chart="${chart}"]`).count(), 1, `the ${chart} chart is drawn`);
      }
      assertEquals(await page.locator(".kpi").count(), 6);
      assertEquals(await page.getAttribute("#kpi-requests", "data-value"), "0");
      assertEquals(await text(page, "#kpi-config .kpi-value"), "rev 1");
      assertMatch(await text(page, "#bars-headroom"), /5 limited rule\(s\); no counter in a current window yet/);

      // Two requests per user spend each user's 10 input tokens; a third is refused before the upstream, and an
      // unknown model never reaches a route.
      const ask = (user: string, model = "rate-limit-funky-model") =>
        fetch(`http://127.0.0.1:${run.port}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-user-id": user },
          body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
        }).then(async (r) => {
          await r.body?.cancel();
          return r.status;
        });
      const statuses: number[] = [];
      for (const user of USERS) for (let i = 0; i < 2; i++) statuses.push(await ask(user));
      assertEquals(statuses, new Array(12).fill(200));
      assertEquals(await ask(USERS[0]!), 429);
      assertEquals(await ask(USERS[1]!, "no-such-model"), 404);

      // The page's own script polls; the test reads what it drew (the page's CSP forbids evaluating strings in it).
      let drawn = "";
      await pollUntil("the page to show the 12 requests and both error types", async () => {
        drawn = [
          await page.getAttribute("#kpi-requests", "data-value"),
          await page.getAttribute('svg[data-chart="traffic"]', "data-requests"),
          await page.getAttribute('[data-chart="error-types"]', "data-rows"),
        ].join();
        return drawn === "12,12,2" || undefined;
      }, { timeoutMs: 15_000, intervalMs: 100 }).catch((e: Error) => {
        throw new Error(`${e.message}: requests, charted requests, error types were ${drawn}`, { cause: e });
      });
      assertEquals(await page.getAttribute("#kpi-tokens", "data-value"), String(12 * 8));
      assertEquals(await page.getAttribute('svg[data-chart="tokens"]', "data-total"), String(12 * 8));
      assertEquals(await page.getAttribute('svg[data-chart="latency"]', "data-chart"), "latency");
      assertMatch(await text(page, "#kpi-errors .kpi-sub"), /^2 of 14 responses/);
      const errorTypes = await text(page, "#bars-error-types");
      assertMatch(errorTypes, /429 request_rate_limited/);
      assertMatch(errorTypes, /404 /);

      // Headroom: a counter per user for each token rule that counted something (input, output and total: the cached
      // and CEL costs are 0); every user spent the whole input-token budget, and the busiest counters come first.
      await pollUntil(
        "the headroom of 18 counters",
        async () => /on the busiest of 18 counter\(s\)/.test(await text(page, "#kpi-headroom .kpi-sub")) || undefined,
      );
      assertMatch(await text(page, "#headroom-note"), /the busiest 12 of 18 counters/);
      const headroom = page.locator("#bars-headroom .bar-row");
      assertEquals(await headroom.count(), 12);
      assertMatch(await headroom.first().innerText(), /x-user-id=\w+\s+10 \/ 10 per hour · 0 left\s+llm_input_token/);
      assertEquals(await text(page, "#kpi-headroom .kpi-value"), "0%");

      // Top tenants: one bar per user, by tokens, told apart by the x-user-id header.
      assertEquals(await page.getAttribute('[data-chart="tenants"]', "data-rows"), String(USERS.length));
      assertMatch(await text(page, "#tenants-source"), /by x-user-id/);
      assertMatch(await text(page, "#bars-tenants .bar-row"), /^\w+\s+16 tokens\s+2 request\(s\)$/);

      // The breakdown switches the main chart to tenants (a legend entry each) and to tokens.
      await page.click('#breakdown button[data-value="tenant"]');
      await page.click('#metric button[data-value="tokens"]');
      assertEquals(await page.locator("#legend-traffic .legend-item").count(), USERS.length);
      assertEquals(await text(page, "#traffic-title"), "Tokens by tenant");
      assertEquals(await page.getAttribute('svg[data-chart="traffic"]', "data-total"), String(12 * 8));
      await page.click('#breakdown button[data-value="route"]');
      await page.click('#metric button[data-value="requests"]');
      // Hovering the traffic chart reads out a bucket.
      // (Aimed through the chart's container: the SVG itself is redrawn at every poll.)
      const box = (await page.locator("#chart-traffic").boundingBox())!;
      await page.mouse.move(box.x + box.width - 20, box.y + box.height / 2);
      assertMatch(await text(page, "#chart-traffic .tip"), /default\/envoy-ai-gateway-token-ratelimit/);

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      assert(Deno.statSync(SCREENSHOT).size > 20_000, "the screenshot has content");
      assertEquals(outside, [], "the page asked for nothing outside the admin port");
      assertEquals(problems, []);
    } finally {
      await browser.close();
      run.child.kill("SIGTERM");
      assertEquals((await run.child.status).code, 0);
      await run.draining;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
