using System.Diagnostics;
using System.Globalization;

namespace PipeTransport.Perf.Soak;

/// <summary>What one wrk run of the soak reported (its script's <c>soak-wrk</c> line).</summary>
internal sealed record WrkOutcome(long Requests, long Checked, long BadBodies, long Connect, long Read, long Write, long Status, long Timeout)
{
    public long SocketErrors => Connect + Read + Write + Timeout;
}

/// <summary>
/// Runs wrk with the soak's script: requests rotate over <c>GET /plaintext</c>, <c>GET /64k</c> and
/// <c>POST /echo</c> (4 KiB), every response's status and body is checked against what the server must
/// answer, and every <c>closeEvery</c>-th request asks for <c>Connection: close</c> (0: keep-alive only).
/// </summary>
internal static class SoakWrk
{
    private const string Script = """
        local threads = {}
        function setup(thread) table.insert(threads, thread) end
        function init(args)
          close_every = tonumber(args[1]) or 0
          n = 0; bad = 0; checked = 0
          hello = "Hello, World!"
          local t = {}
          for i = 0, 65535 do t[#t + 1] = string.char(97 + i % 26) end
          big = table.concat(t)
          post = string.rep("0123456789abcdef", 256)
        end
        function request()
          n = n + 1
          local headers = nil
          if close_every > 0 and n % close_every == 0 then headers = { ["Connection"] = "close" } end
          local kind = n % 3
          if kind == 0 then return wrk.format("GET", "/plaintext", headers) end
          if kind == 1 then return wrk.format("GET", "/64k", headers) end
          return wrk.format("POST", "/echo", headers, post)
        end
        function response(status, headers, body)
          checked = checked + 1
          if status ~= 200 or (body ~= hello and body ~= big and body ~= post) then bad = bad + 1 end
        end
        function done(summary, latency, requests)
          local b, c = 0, 0
          for _, t in ipairs(threads) do b = b + t:get("bad"); c = c + t:get("checked") end
          local e = summary.errors
          io.write(string.format("soak-wrk %d %d %d %d %d %d %d %d\n",
            summary.requests, c, b, e.connect, e.read, e.write, e.status, e.timeout))
        end
        """;

    public static string WriteScript(string directory)
    {
        string path = Path.Combine(directory, "soak.lua");
        File.WriteAllText(path, Script);
        return path;
    }

    /// <summary>Runs wrk to its end; throws when it fails or prints no result.</summary>
    public static async Task<WrkOutcome> RunAsync(string script, int port, int connections, int seconds, int timeoutSeconds, int closeEvery)
    {
        var start = new ProcessStartInfo("wrk")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in new[]
        {
            "-t1", $"-c{connections}", $"-d{seconds}s", $"--timeout={timeoutSeconds}s", "-s", script,
            $"http://127.0.0.1:{port}/", "--", closeEvery.ToString(CultureInfo.InvariantCulture),
        })
        {
            start.ArgumentList.Add(argument);
        }

        using var wrk = Process.Start(start) ?? throw new InvalidOperationException("wrk did not start");
        var stdout = wrk.StandardOutput.ReadToEndAsync();
        var stderr = wrk.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(seconds + timeoutSeconds + 30));
        try
        {
            await wrk.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            wrk.Kill();
            throw new InvalidOperationException($"wrk -d{seconds}s still ran {seconds + timeoutSeconds + 30} s after it started");
        }

        string output = await stdout;
        string? line = output.Split('\n').FirstOrDefault(l => l.StartsWith("soak-wrk ", StringComparison.Ordinal));
        if (wrk.ExitCode != 0 || line is null)
        {
            throw new InvalidOperationException($"wrk failed (exit {wrk.ExitCode}): {SoakServer.OneLine(output + await stderr)}");
        }

        long[] v = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(w => long.Parse(w, CultureInfo.InvariantCulture)).ToArray();
        return new WrkOutcome(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
    }
}
