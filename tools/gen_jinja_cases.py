#!/usr/bin/env python3
"""Regenerates tests/text/data/jinja_cases.json: Jinja templates rendered by Python's jinja2
configured exactly as transformers renders chat templates (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols, transformers' tojson / raise_exception). The C++
interpreter must reproduce every output, and fail where jinja2 fails. Run by hand (needs
jinja2); the tests only read the JSON."""
import json
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


class Generation(jinja2.ext.Extension):
    """transformers' {% generation %} tag, which renders its body unchanged."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


MSGS = [{"role": "system", "content": "  Be brief.  "},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Sure?"}]

# A Llama 3.1-style tool-calling template (same constructs as Meta's published template).
LLAMA31_STYLE = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather at a place",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                         "required": ["city"]}}}]
TOOL_CHAT = [{"role": "system", "content": "You are a bot."},
             {"role": "user", "content": "Weather in Zürich?"},
             {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}}]},
             {"role": "tool", "content": {"temp": 21.5, "sky": "clear"}},
             {"role": "assistant", "content": "21.5 degrees and clear."}]

# (name, template, context)
CASES = [
    ("llama31_style_tools", LLAMA31_STYLE, {"bos_token": "<|begin_of_text|>", "messages": TOOL_CHAT, "tools": TOOLS, "add_generation_prompt": True}),
    ("llama31_style_tools_in_system", LLAMA31_STYLE, {"bos_token": "<|begin_of_text|>", "messages": TOOL_CHAT, "tools": TOOLS, "tools_in_user_message": False, "add_generation_prompt": False}),
    ("llama31_style_builtin", LLAMA31_STYLE, {"bos_token": "<|begin_of_text|>", "messages": [{"role": "user", "content": "Search"}, {"role": "assistant", "tool_calls": [{"function": {"name": "brave_search", "arguments": {"query": "x", "n": "3"}}}]}], "builtin_tools": ["brave_search", "code_interpreter"], "add_generation_prompt": True}),
    ("llama31_style_plain", LLAMA31_STYLE, {"bos_token": "<|begin_of_text|>", "messages": MSGS[2:], "add_generation_prompt": True}),
    ("llama31_style_two_tool_calls_raise", LLAMA31_STYLE, {"bos_token": "<s>", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"function": {"name": "a", "arguments": {}}}, {"function": {"name": "b", "arguments": {}}}]}]}),
    ("text", "Hello, world!\n", {}),
    ("trailing_newline_dropped", "a\n\n", {}),
    ("crlf_normalised", "a\r\nb\rc", {}),
    ("print_values", "{{ 1 }}|{{ 1.5 }}|{{ 'x' }}|{{ none }}|{{ true }}|{{ false }}|{{ [1, 'a', none] }}|{{ {'k': 'v'} }}|{{ (1,) }}|{{ () }}", {}),
    ("floats", "{{ 1.0 }} {{ 1e20 }} {{ 1e-5 }} {{ 0.1 + 0.2 }} {{ 2.5e16 }} {{ 123456.789 }} {{ 1/3 }}", {}),
    ("arithmetic", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 6 / 3 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -3 + 1 }} {{ 3 - -1 }}", {}),
    ("string_ops", "{{ 'a' + 'b' }} {{ 'ab' * 3 }} {{ 1 ~ 'x' ~ none }} {{ 'abc' ~ 2.0 }}", {}),
    ("comparisons", "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ [1, 2] < [1, 3] }} {{ true == 1 }}", {}),
    ("in_operator", "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ 3 not in [1] }}", {}),
    ("logic", "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 'z' }} {{ not 0 }} {{ none or [] }} {{ not [] and 'q' }}", {}),
    ("conditional_expr", "{{ 'y' if 1 else 'n' }}{{ 'y' if 0 else 'n' }}[{{ 'y' if 0 }}]", {}),
    ("if_elif_else", "{% for x in [1, 2, 3, 4] %}{% if x == 1 %}one{% elif x == 2 %}two{% elif x > 3 %}big{% else %}other{% endif %},{% endfor %}", {}),
    ("set_and_scopes", "{% set x = 0 %}{% for i in range(3) %}{{ x }}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}{% if true %}{% set x = 5 %}{% endif %}{{ x }}", {}),
    ("set_in_loop_not_visible_after", "{% for i in range(2) %}{% set y = i %}{% endfor %}{{ y is defined }}", {}),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c, d = [3, 4] %}{{ c + d }}", {}),
    ("set_block", "{% set s %}  inner {{ 1 + 1 }}  {% endset %}[{{ s }}]{% set t | upper %}abc{% endset %}{{ t }}", {}),
    ("namespace", "{% set ns = namespace(found=false, n=0) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }}", {"messages": MSGS}),
    ("loop_vars", "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", {}),
    ("loop_prev_next_cycle", "{% for x in [1, 2, 3] %}{{ loop.previtem | default('-') }}{{ loop.nextitem | default('-') }}{{ loop.cycle('o', 'e') }} {% endfor %}", {}),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}{% for x in [1] %}{{ x }}{% else %}no{% endfor %}", {}),
    ("for_filter", "{% for x in range(10) if x is odd %}{{ x }}{{ loop.index }} {% endfor %}", {}),
    ("for_unpack_items", "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d | items %}{{ k }}:{{ v }},{% endfor %}", {"d": {"z": 1, "y": [2]}}),
    ("for_dict_keys", "{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}", {}),
    ("break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("slicing", "{{ [1, 2, 3, 4, 5][1:4] }} {{ 'hello'[::-1] }} {{ [1, 2, 3][-1] }} {{ 'héllo'[1] }} {{ [1, 2, 3, 4][::2] }} {{ 'abc'[:-1] }} {{ [1, 2, 3][5:] }} {{ (1, 2, 3)[1:] }}", {}),
    ("messages_slice", "{% for m in messages[1:] %}{{ m.role }} {% endfor %}{{ messages[0]['content'] | trim }}|", {"messages": MSGS}),
    ("attribute_vs_item", "{{ d.k }} {{ d['k'] }} {{ d.missing }}|{{ d['missing'] }}|{{ d.get('k') }} {{ d.get('x', 'def') }} {{ d.get('x') }}", {"d": {"k": "v"}}),
    ("dict_methods", "{{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }}", {"d": {"b": 1, "a": 2}}),
    ("string_methods", "{{ '  x  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ ' a '.lstrip() }}|{{ ' a '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'Hello'.upper() }}|{{ 'Hello'.lower() }}|{{ 'hello world'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'abcabc'.find('c') }}|{{ 'abc'.find('z') }}|{{ '-'.join(['a', 'b']) }}|{{ 'abcabc'.count('b') }}", {}),
    ("unicode_strip_trim", "[{{ s | trim }}][{{ s.strip() }}]", {"s": "\u3000\u00a0 hi\u2003\n"}),
    ("filters_basic", "{{ '  x ' | trim }}|{{ 'aBc' | upper }}|{{ 'aBc' | lower }}|{{ 'ab cd' | title }}|{{ 'ab CD' | capitalize }}|{{ [1, 2, 3] | length }}|{{ 'héllo' | length }}|{{ {'a': 1} | count }}|{{ [3, 1, 2] | first }}|{{ [3, 1, 2] | last }}|{{ 'abc' | list }}|{{ [1, 2] | reverse | list }}|{{ 'abc' | reverse }}", {}),
    ("filter_default", "{{ missing | default('d') }}|{{ none | default('d') }}|{{ '' | default('e', true) }}|{{ 0 | d('z', boolean=true) }}|{{ 'v' | default('d') }}", {}),
    ("filter_join_map", "{{ ['a', 'b'] | join(', ') }}|{{ [1, 2] | join }}|{{ users | map(attribute='name') | join('/') }}|{{ users | map(attribute='age', default=0) | list }}|{{ ['a', 'b'] | map('upper') | list }}|{{ users | join(',', attribute='name') }}", {"users": [{"name": "x", "age": 3}, {"name": "y"}]}),
    ("filter_select", "{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3, 4] | reject('odd') | list }}|{{ [0, 1, '', 'a'] | select | list }}|{{ [1, 5, 3] | select('greaterthan', 2) | list }}", {}),
    ("filter_selectattr", "{% for c in messages[1]['content'] | selectattr('type', 'equalto', 'image') %}<img>{% endfor %}{% for c in messages[1]['content'] | selectattr('type', 'equalto', 'text') %}{{ c['text'] }}{% endfor %}|{{ messages | selectattr('role', 'eq', 'user') | list | length }}|{{ messages | rejectattr('role', 'in', ['user', 'system']) | map(attribute='content') | list }}", {"messages": MSGS}),
    ("select_filters_on_falsy_input", "[{% for c in none | selectattr('type', 'equalto', 'x') %}x{% endfor %}{{ 0 | map('upper') | list }}{{ '' | select | list }}{{ none | rejectattr('a') | list }}]", {}),
    ("selectattr_on_string_content", "[{% for c in messages[3]['content'] | selectattr('type', 'equalto', 'text') %}{{ c }}{% endfor %}]", {"messages": MSGS}),
    ("filter_tojson", "{{ d | tojson }}|{{ 'é\"\\n\\t<' | tojson }}|{{ [1.0, none, true, 2] | tojson }}|{{ d | tojson(indent=2) }}|{{ [] | tojson(indent=2) }}|{{ d | tojson(sort_keys=true) }}|{{ d | tojson(separators=(',', ':')) }}", {"d": {"b": 1, "a": [1, {"x": "y"}], "c": None}}),
    ("filter_sort_unique", "{{ ['b', 'A', 'c'] | sort }}|{{ ['b', 'A', 'c'] | sort(case_sensitive=true) }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ users | sort(attribute='age') | map(attribute='name') | list }}|{{ ['a', 'A', 'b', 'a'] | unique | list }}", {"users": [{"name": "x", "age": 3}, {"name": "y", "age": 1}]}),
    ("filter_numbers", "{{ -3 | abs }}|{{ '42' | int }}|{{ 'x' | int }}|{{ '4.5' | float }}|{{ 3.7 | int }}|{{ 2.567 | round(2) }}|{{ 2.5 | round }}|{{ 3.5 | round }}|{{ 2.675 | round(2) }}|{{ 2.1 | round(0, 'ceil') }}|{{ 2.9 | round(method='floor') }}|{{ [1, 2.5] | sum }}|{{ [3, 1] | min }}|{{ [3, 1] | max }}", {}),
    ("filter_misc", "{{ 'a\\nb' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'x y  z' | wordcount }}|{{ 'a-b' | replace('-', '+') }}|{{ '<&>' | escape }}|{{ {'b': 1, 'a': 2} | dictsort }}|{{ 5 | string ~ '!' }}|{{ d | attr('k') }}", {"d": {"k": 1}}),
    ("tests", "{{ x is defined }}{{ y is undefined }}{{ none is none }}{{ 'a' is string }}{{ 1 is number }}{{ 1 is integer }}{{ 1.5 is float }}{{ {} is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}{{ [] is sequence }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby(3) }}{{ 1 is eq(1) }}{{ 2 is gt(1) }}{{ 'ab' is lower }}{{ true is boolean }}{{ true is true }}{{ false is false }}{{ 'x' is in('xyz') }}{{ x is not none }}", {"x": 1}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} {{ greet('b', '?') }} {{ greet(punct='.', name='c') }}", {}),
    ("macro_call_block", "{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inside{% endcall %}", {}),
    ("filter_block", "{% filter upper %}abc {{ 'd' }}{% endfilter %}", {}),
    ("whitespace_control", "a  {{- 'b' -}}  c\n  {%- if true -%}\n  d\n  {%- endif %}\ne {#- comment -#} f", {}),
    ("trim_and_lstrip_blocks", "<ul>\n    {% for x in [1, 2] %}\n    <li>{{ x }}</li>\n    {% endfor %}\n</ul>\n", {}),
    ("lstrip_plus_disables", "x\n    {%+ if true %}y{% endif %}\n", {}),
    ("trim_plus_disables", "{% if true +%}\nz{% endif %}", {}),
    ("comment_trim", "a\n  {# c #}\nb", {}),
    ("raw_block", "{% raw %}{{ not evaluated }}{% endraw %}", {}),
    ("string_escapes", "{{ 'a\\tb\\u00e9\\x41\\\\' }}{{ \"q'\" }}{{ 'x' 'y' }}", {}),
    ("str_of_list_content", "{{ messages[1]['content'] | trim }}", {"messages": MSGS}),
    ("repr_quotes", "{{ ['it\\'s', 'say \"hi\"', 'both \\' \"', 'nl\\n', 'tab\\t', 'zw\\u200b', 'nb\\u00a0', 'é'] }}", {}),
    ("range_forms", "{{ range(3) | list }} {{ range(1, 4) | list }} {{ range(10, 0, -3) | list }}", {}),
    ("dict_literal_and_global_dict", "{{ {'a': 1, 'b': [2]} }} {{ dict(x=1, y='z') }}", {}),
    ("generation_block", "{% generation %}gen{{ 1 }}{% endgeneration %}", {}),
    ("undefined_prints_empty", "[{{ nothing }}][{{ d.nothing }}][{{ nothing | length }}][{{ nothing is defined }}]", {"d": {}}),
    ("undefined_iterates_empty", "{% for x in nothing %}x{% endfor %}ok", {}),
    ("undefined_comparisons", "{{ nothing == 1 }} {{ nothing != 1 }} {{ 'a' in nothing }}", {}),
    ("bos_and_generation_prompt", "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}", {"bos_token": "<s>", "messages": MSGS, "add_generation_prompt": True}),
    ("title_filter_words", "{{ 'hello-world (foo) {bar} <b>x\\'y  z'|title }}|{{ {'k': 'v'}|title }}", {}),
    ("islower_isupper_tests", "{{ 1 is lower }}{{ 'a1' is lower }}{{ 'A' is upper }}{{ '' is lower }}{{ 'aB' is upper }}", {}),
    ("odd_even_numbers", "{{ 3.0 is odd }}{{ 4.5 is even }}{{ -3 is odd }}{{ true is odd }}", {}),
    ("raw_lstrip_before_endraw", "{% raw %}\n  x\n  {% endraw %}|{% raw -%}  y  {%- endraw %}|", {}),
    ("slice_of_variable_list", "{{ l[1:] }}{{ l[:1] }}{{ s[2:] }}", {"l": [1, 2, 3], "s": "abcd"}),
    # Failures: the C++ side must raise, with the message jinja2 gives.
    ("error_odd_of_string", "{{ s is odd }}", {"s": "a"}),
    ("error_slice_of_bool", "{{ (x is defined)[1:] }}", {"x": 1}),
    ("error_raise_exception", "{{ raise_exception('Conversation roles must alternate user/assistant') }}", {}),
    ("error_raise_in_branch", "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be user, got ' + messages[0].role) }}{% endif %}", {"messages": MSGS}),
    ("error_unknown_filter", "{{ x | nosuchfilter }}", {"x": 1}),
    ("error_unknown_test", "{{ x is nosuchtest }}", {"x": 1}),
    ("error_attribute_of_undefined", "{{ nothing.attr }}", {}),
    ("error_undefined_arithmetic", "{{ nothing + 1 }}", {}),
    ("error_add_str_int", "{{ 'a' + 1 }}", {}),
    ("error_order_int_str", "{{ 1 < 'a' }}", {}),
    ("error_call_non_callable", "{{ 'a'() }}", {}),
    ("error_syntax_unclosed_if", "{% if true %}x", {}),
    ("error_syntax_bad_expr", "{{ 1 + }}", {}),
    ("error_unknown_tag", "{% frobnicate %}", {}),
    ("error_division_by_zero", "{{ 1 / 0 }}", {}),
    ("error_set_attr_non_namespace", "{% set d = {} %}{% set d.x = 1 %}", {}),
    ("error_list_append_blocked", "{% set l = [] %}{{ l.append(1) }}", {}),
    ("error_unterminated_string", "{{ 'abc }}", {}),
]


def main():
    env = make_env()
    out = []
    for name, template, context in CASES:
        case = {"name": name, "template": template, "context": context}
        try:
            case["output"] = env.from_string(template).render(**context)
        except Exception as e:  # noqa: BLE001 - record the reference failure
            case["error"] = str(e)
            case["error_type"] = type(e).__name__
        out.append(case)
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/text/data/jinja_cases.json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/gen_jinja_cases.py", "jinja2": jinja2.__version__,
                   "cases": out}, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
