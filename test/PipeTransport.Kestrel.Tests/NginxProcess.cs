using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// A real nginx in the foreground (<c>daemon off</c>) with its prefix, pid file and temp paths in a test
/// folder, serving the site block of docs/nginx.md on a free loopback port. Disposing kills it and its workers.
/// </summary>
internal sealed class NginxProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();

    private NginxProcess(Process process, int port)
    {
        _process = process;
        Port = port;
        _process.ErrorDataReceived += (_, e) =>
        {
            lock (_stderr)
            {
                _stderr.AppendLine(e.Data);
            }
        };
    }

    public int Port { get; }

    public Uri Uri => new($"http://127.0.0.1:{Port}/");

    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>The nginx binary, or null when it is not installed.</summary>
    public static string? Find() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/sbin").Append("/usr/local/sbin")
            .Select(d => Path.Combine(d, "nginx"))
            .FirstOrDefault(File.Exists);

    /// <summary>
    /// The site configuration of docs/nginx.md (its first <c>nginx</c> block) with the socket path and
    /// the listen address replaced: the test runs the recipe users copy.
    /// </summary>
    public static string RecipeSite(string socketPath, int port)
    {
        string doc = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "nginx.md"));
        int start = doc.IndexOf("```nginx\n", StringComparison.Ordinal);
        if (start < 0)
        {
            throw new InvalidOperationException("docs/nginx.md has no ```nginx block");
        }

        start += "```nginx\n".Length;
        string site = doc[start..doc.IndexOf("```", start, StringComparison.Ordinal)];
        string replaced = site
            .Replace("unix:/run/myapp/http.sock", $"unix:{socketPath}", StringComparison.Ordinal)
            .Replace("listen 80;", $"listen 127.0.0.1:{port};", StringComparison.Ordinal);
        if (replaced.Contains("/run/myapp/", StringComparison.Ordinal) || !replaced.Contains($"listen 127.0.0.1:{port};", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("docs/nginx.md's block no longer has 'server unix:/run/myapp/http.sock' and 'listen 80;'");
        }

        return replaced;
    }

    /// <summary>Starts nginx and waits until it accepts on its port.</summary>
    /// <param name="nginx">The binary.</param>
    /// <param name="prefix">A folder for its configuration, pid file and temp paths.</param>
    /// <param name="site">The http-level configuration (upstream, server).</param>
    /// <param name="port">The port <paramref name="site"/> listens on.</param>
    /// <param name="user">The workers' user (needs root), or null to keep ours.</param>
    /// <param name="cancellationToken">Bounds the wait.</param>
    public static async Task<NginxProcess> StartAsync(string nginx, string prefix, string site, int port, string? user, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(prefix);
        string config = Path.Combine(prefix, "nginx.conf");
        File.WriteAllText(config, $$"""
            daemon off;
            {{(user is null ? "" : $"user {user};")}}
            worker_processes 1;
            pid {{prefix}}/nginx.pid;
            error_log stderr warn;
            events { worker_connections 256; }
            http {
                access_log off;
                client_body_temp_path {{prefix}}/client_body;
                proxy_temp_path {{prefix}}/proxy;
                fastcgi_temp_path {{prefix}}/fastcgi;
                uwsgi_temp_path {{prefix}}/uwsgi;
                scgi_temp_path {{prefix}}/scgi;
            {{site}}
            }
            """);

        var start = new ProcessStartInfo(nginx)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (string argument in new[] { "-p", prefix, "-c", config, "-e", "stderr" })
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start)!;
        var proxy = new NginxProcess(process, port);
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        try
        {
            await proxy.WaitUntilListeningAsync(cancellationToken);
            return proxy;
        }
        catch
        {
            await proxy.DisposeAsync();
            throw;
        }
    }

    /// <summary>A loopback port nobody listens on (nginx binds it a moment later).</summary>
    public static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private async Task WaitUntilListeningAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"nginx exited with {_process.ExitCode}: {Stderr}");
            }

            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, Port), cancellationToken);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(20, cancellationToken); // poll the condition; the test's deadline bounds it
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    /// <summary>The checkout's root (the folder with docs/), found above the test binaries.</summary>
    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "docs", "nginx.md")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no docs/nginx.md above {AppContext.BaseDirectory}");
    }
}
