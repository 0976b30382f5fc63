using System.Text;

namespace PipeTransport.Bridge;

/// <summary>
/// socat's lexical rules for an address: inside '…' or "…", and inside ( ), [ ] and { } (nested),
/// the separators ',' and '!!' are plain text; a backslash makes the next character plain text.
/// Splitting keeps the text as written; <see cref="Unquote"/> then removes one level of quotes and
/// backslashes (brackets stay, as in socat: <c>tcp:[::1]:80</c>).
/// </summary>
internal static class AddressLexer
{
    /// <summary>Splits <paramref name="text"/> at each top-level <paramref name="separator"/>.</summary>
    public static List<string> Split(string text, string separator)
    {
        var parts = new List<string>();
        int start = 0, depth = 0;
        char quote = '\0';
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\\' && quote != '\'')
            {
                i++;
                continue;
            }
            if (quote != '\0')
            {
                if (c == quote) quote = '\0';
                continue;
            }
            switch (c)
            {
                case '\'' or '"':
                    quote = c;
                    continue;
                case '(' or '[' or '{':
                    depth++;
                    continue;
                case ')' or ']' or '}' when depth > 0:
                    depth--;
                    continue;
            }
            if (depth == 0 && string.CompareOrdinal(text, i, separator, 0, separator.Length) == 0)
            {
                parts.Add(text[start..i]);
                i += separator.Length - 1;
                start = i + 1;
            }
        }
        parts.Add(text[start..]);
        return parts;
    }

    /// <summary>Removes one level of quotes and backslash escapes.</summary>
    public static string Unquote(string text)
    {
        if (text.IndexOfAny(['\'', '"', '\\']) < 0) return text;
        var result = new StringBuilder(text.Length);
        char quote = '\0';
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\\' && quote != '\'' && i + 1 < text.Length)
                result.Append(text[++i]);
            else if (quote != '\0' && c == quote)
                quote = '\0';
            else if (quote == '\0' && c is '\'' or '"')
                quote = c;
            else
                result.Append(c);
        }
        return result.ToString();
    }

    /// <summary>
    /// A command line split into words for <c>exec:</c>, with no shell: words are separated by
    /// unquoted whitespace; quotes group and backslashes escape, and both are removed.
    /// </summary>
    public static List<string> SplitWords(string text)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        bool inWord = false;
        char quote = '\0';
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quote == '\0' && char.IsWhiteSpace(c))
            {
                if (inWord) words.Add(word.ToString());
                word.Clear();
                inWord = false;
                continue;
            }
            inWord = true;
            if (c == '\\' && quote != '\'' && i + 1 < text.Length)
                word.Append(text[++i]);
            else if (quote != '\0' && c == quote)
                quote = '\0';
            else if (quote == '\0' && c is '\'' or '"')
                quote = c;
            else
                word.Append(c);
        }
        if (inWord) words.Add(word.ToString());
        return words;
    }
}
