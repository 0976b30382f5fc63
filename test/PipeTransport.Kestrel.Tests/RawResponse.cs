using System.Globalization;

namespace PipeTransport.Kestrel.Tests;

/// <summary>HTTP/1.1 responses parsed from raw text (Content-Length or chunked bodies), for clients without HttpClient.</summary>
internal sealed record RawResponse(int Status, IReadOnlyDictionary<string, string> Headers, string Body)
{
    public static IReadOnlyList<RawResponse> ParseAll(string text)
    {
        var responses = new List<RawResponse>();
        var at = 0;
        while (at < text.Length)
        {
            var headEnd = text.IndexOf("\r\n\r\n", at, StringComparison.Ordinal);
            if (headEnd < 0)
            {
                throw new FormatException($"Incomplete response head at {at}: {text[at..]}");
            }
            var lines = text[at..headEnd].Split("\r\n");
            var status = int.Parse(lines[0].Split(' ')[1], CultureInfo.InvariantCulture);
            var headers = lines[1..].Select(l => l.Split(": ", 2)).ToDictionary(p => p[0], p => p[1], StringComparer.OrdinalIgnoreCase);
            at = headEnd + 4;
            string body;
            if (headers.TryGetValue("Content-Length", out var length))
            {
                var n = int.Parse(length, CultureInfo.InvariantCulture);
                body = text.Substring(at, n);
                at += n;
            }
            else if (headers.TryGetValue("Transfer-Encoding", out var encoding) && encoding == "chunked")
            {
                var sb = new System.Text.StringBuilder();
                while (true)
                {
                    var lineEnd = text.IndexOf("\r\n", at, StringComparison.Ordinal);
                    var size = int.Parse(text[at..lineEnd], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    at = lineEnd + 2;
                    if (size == 0)
                    {
                        at += 2;
                        break;
                    }
                    sb.Append(text, at, size);
                    at += size + 2;
                }
                body = sb.ToString();
            }
            else
            {
                body = text[at..];
                at = text.Length;
            }
            responses.Add(new RawResponse(status, headers, body));
        }
        return responses;
    }

    public static RawResponse Parse(string text) => ParseAll(text).Single();
}
