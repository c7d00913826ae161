"""The built-in sentence templates, per language and intent (syntax: :mod:`.grammar`).

Intents are tried in the order listed here and templates in theirs; the first template that matches
the whole (normalised) transcript and whose slots all parse wins. An intent added here also needs
its tool call in :mod:`.actions`.
"""

from __future__ import annotations

BUILTIN_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "en": {
        "volume_set": [
            "[set|change|turn|put|make] [the] (volume|sound|speaker volume) [level] [to|at] {volume} [percent|%]",
            "(set|change|turn|put) [the] (volume|sound) (up|down) to {volume} [percent|%]",
            "volume {volume} [percent|%]",
        ],
        "volume_up": [
            "[turn|make] [the] (volume|sound|it|speaker) (up|louder|higher) [a (bit|little)] [more]",
            "(turn|crank) up the (volume|sound)",
            "(increase|raise) [the] (volume|sound) [by {step} [percent|%]]",
            "[turn] [the] (volume|sound) up by {step} [percent|%]",
            "[a] [little|bit] louder [please]", "(speak|talk) louder", "i can't hear you", "i cannot hear you",
        ],
        "volume_down": [
            "[turn|make] [the] (volume|sound|it|speaker) (down|quieter|softer|lower) [a (bit|little)] [more]",
            "(decrease|lower|reduce) [the] (volume|sound) [by {step} [percent|%]]",
            "[turn] [the] (volume|sound) down by {step} [percent|%]",
            "[a] [little|bit] (quieter|softer) [please]", "(speak|talk) (more quietly|softer|quieter)",
            "(you are|you're) too loud", "too loud",
        ],
        "mute": ["mute [the] [sound|volume|speaker|audio]", "(turn|switch) off the (sound|audio|speaker)"],
        "unmute": ["unmute [the] [sound|volume|speaker|audio]", "(turn|switch) on the (sound|audio|speaker)"],
        "get_volume": ["what is the (volume|volume level)", "how loud (is it|are you)", "what volume is it"],
        "time": [
            "what time is it [now|right now]", "what is the [current] time [now]", "tell me the time",
            "[do you know] what time it is", "[what is the] time please", "what time",
        ],
        "date": [
            "what (day|date) is it [today]", "what is [the] (date|day) [today]", "what is today's date",
            "tell me the date", "what day of the week is it [today]", "what is today", "which day is today",
        ],
        "timer_set": [
            "(set|start|create|make) [a|an|the] timer (for|of) {duration}",
            "(set|start|create|make) [a|an] {duration} timer",
            "(set|start|create|make) [a|an] timer (for|of) {duration} (for|to|called|named) {label}",
            "(set|start|create|make) [a|an] {duration} timer (for|to|called|named) {label}",
            "[a] timer (for|of) {duration}", "{duration} timer",
            "(remind me|wake me up|tell me) in {duration}",
            "(remind me|tell me) in {duration} to {label}",
            "remind me to {label} in {duration}",
            "count down [from] {duration}",
        ],
        "alarm_set": [
            "(set|create|make) [an|a|the] alarm (for|at) {time}",
            "(set|create|make) [an|a|the] alarm (for|at) {time} (for|to|called|named) {label}",
            "wake me [up] at {time}", "remind me at {time}", "remind me at {time} to {label}",
            "remind me to {label} at {time}",
        ],
        "timer_cancel_all": [
            "(cancel|stop|delete|remove|clear) all [of] [the|my] (timers|alarms|timers and alarms|reminders)",
        ],
        "alarm_cancel": ["(cancel|stop|delete|remove|turn off|clear) [the|my] alarm"],
        "timer_cancel": [
            "(cancel|stop|delete|remove|clear) [the|my] (timer|reminder|countdown)",
            "(cancel|stop|delete|remove|clear) [the|my] {label} (timer|reminder)",
        ],
        "timer_list": [
            "(what|which) (timers|alarms) [do i have|are (set|running|there)]",
            "(list|show) [me] [my|the|all] (timers|alarms)",
            "(do i have|are there) any (timers|alarms) [set|running]",
            "how much time is left [on [the|my] timer]", "how long is left [on [the|my] timer]",
            "how much longer [on [the|my] timer]", "time left [on [the|my] timer]",
        ],
        "stop": [
            "(stop|stop it|stop talking|goodbye|good bye|bye|bye bye|see you [later]|that is all|that will be all|"
            "exit|quit|go to sleep|shut up|be quiet|never mind|thanks bye|thank you goodbye|thank you bye|"
            "we are done|i am done|end [the] conversation)",
        ],
        "forget": [
            "forget (our|the|this|my) (conversation|chat|talk)",
            "(clear|delete|erase|wipe|reset) (your|the) (memory|conversation history|history|chat history)",
            "forget (everything|what) (i said|i told you|we said|we talked about)",
            "forget everything",
        ],
        "entity_set": [
            "(set|turn|put|dim|change|adjust) [the] {entity} (to|at) {value} [percent|%|degrees]",
        ],
        "entity_on": [
            "(turn|switch|put) on [the] {entity}", "(turn|switch) [the] {entity} on",
            "(activate|enable) [the] {entity}",
        ],
        "entity_off": [
            "(turn|switch|shut) off [the] {entity}", "(turn|switch|shut) [the] {entity} off",
            "(deactivate|disable) [the] {entity}",
        ],
        # Everyday questions a tiny LLM gets wrong, answered exactly (tools/everyday).
        "calculate": [
            "(what is|how much is|calculate|compute|work out|what is the answer to) {expr} [equal to|equals]",
            "what does {expr} (equal|make|come to)", "{expr} (equals|is|makes) what", "{expr} [equals]",
        ],
        "convert": [
            "[please] (convert|change|turn) {amount} {src} (to|into|in) {dst}",
            "(what is|how much is|how many is) {amount} {src} (in|to|into|as) {dst}",
            "{amount} {src} (in|to|into|is how many|equals how many) {dst}",
            "how many {dst} [are|is] [there] (in|make|make up|per|to) (a|an|one) {src}",
            "how many {dst} [are|is] [there] (in|make|make up) {amount} {src}",
            "how many {dst} (is|are|equals|make) {amount} {src}",
            "how (much|many) is (a|an|one) {src} in {dst}", "what is (a|an|one) {src} in {dst}",
            "(a|an|one) {src} is how many {dst}",
        ],
        "date_day": [
            "what (day|date) (is it|will it be|would it be|was it) {when}",
            "what (day|date) (is|was|will be|would be|falls on) {when}",
            "what (is|was|will be) the date {when}", "what will the date be {when}", "what is the date of {when}",
            "what day of the week (is it|will it be|was it|is|was|will be) {when}",
            "(which|what) day [of the week] (does|will) {when} fall on", "{when} is (what|which) (day|date)",
        ],
        "date_until": [
            "how many (days|sleeps) [are] [there|left] (until|till|to|before) {when}",
            "how many (days|sleeps) (is it|do we have|are left|left) (until|till|to|before) {when}",
            "how (long|soon) [is it] (until|till|before) {when}", "how (far|far away|many days away) is {when}",
            "when is {when}", "days (until|till|to) {when}",
        ],
    },
    "zh": {
        "volume_set": [
            "[把|将](音量|声音)(调到|调成|调为|设置为|设为|设置到|设置成|改成|改为|开到|调至|到)[百分之]{volume}[%]",
            "(调|设置|设|调节)(音量|声音)(到|为|成|至)[百分之]{volume}[%]",
            "音量[百分之]{volume}[%]",
        ],
        "volume_up": [
            "[把|将](音量|声音)(调大|调高|加大|开大|放大|增大|提高|大|高)[一][点|些|点儿]",
            "(调大|调高|加大|开大|增大|提高)[一][点|些|点儿](音量|声音)",
            "大[一]点声", "大声[一][点|些|点儿]", "声音太小[了]", "听不清[楚]",
        ],
        "volume_down": [
            "[把|将](音量|声音)(调小|调低|减小|关小|降低|放小|小|低)[一][点|些|点儿]",
            "(调小|调低|减小|关小|降低)[一][点|些|点儿](音量|声音)",
            "小[一]点声", "小声[一][点|些|点儿]", "声音太大[了]", "太吵[了]",
        ],
        "mute": ["静音", "(关闭|关掉)(声音|音量)", "[把]声音关[掉|了]"],
        "unmute": ["(取消|解除|关闭)静音", "(打开|开启)(声音|音量)"],
        "get_volume": ["[现在]音量[是]多少", "音量多大", "[现在]声音[是]多大"],
        "time": ["[现在]几点[了|钟|了呢]", "现在[是]什么时间", "现在几点钟", "报时", "告诉我[现在的]时间",
                 "现在时间"],
        "date": ["今天[是]几[月几]号", "今天[是](星期几|周几|礼拜几)", "今天[是]什么日子", "今天[的]日期",
                 "今天是哪天", "[今天]几号"],
        "timer_set": [
            "[帮我](设置|设定|定|设|开始|启动|来|开)[一个|个]{duration}[的](计时器|定时器|倒计时|计时|闹钟)",
            "[帮我](设置|设定|定|设|开始|启动)[一个|个](计时器|定时器|倒计时)[为]{duration}",
            "(计时|倒计时){duration}",
            "{duration}(后|以后|之后)(提醒|叫)我",
            "{duration}(后|以后|之后)(提醒|叫)我{label}",
            "(过|再过){duration}(提醒|叫)我[{label}]",
        ],
        "alarm_set": [
            "[帮我][明天|今天](设置|设定|定|设)[一个|个]{time}的闹钟",
            "[把]闹钟(定|设|设置)(在|到|为){time}",
            "[明天|今天]{time}(叫|喊)[醒]我[起床]",
            "[明天|今天]{time}提醒我[{label}]",
        ],
        "timer_cancel_all": ["(取消|删除|清除|关掉)(所有|全部)[的](计时器|定时器|闹钟|提醒|倒计时)",
                             "(计时器|闹钟|定时器)全部取消"],
        "alarm_cancel": ["(取消|关掉|关闭|删除|停止|关)[一下][那个]闹钟"],
        "timer_cancel": ["(取消|关掉|关闭|停止|删除|停)[一下][那个](计时器|定时器|倒计时|计时|提醒)",
                         "(取消|删除){label}的(计时器|提醒)"],
        "timer_list": ["[计时器|倒计时](还剩|剩下|还有)(多少|多长)时间", "(计时器|倒计时)还[剩|有]多久",
                       "[我]有(哪些|什么|几个)(计时器|定时器|闹钟|提醒)", "[查看|看看][我的](计时器|闹钟)"],
        "stop": ["(再见|拜拜|停|停止|别说了|不要说了|退出|结束|结束对话|不聊了|没事了|就这样|去睡吧|闭嘴|安静|"
                 "好了再见|谢谢再见)"],
        "forget": ["忘(记|掉)[我们|刚才|之前][的](对话|聊天|谈话)[记录|内容]",
                   "(清除|清空|删除)[你的](记忆|对话记录|聊天记录|对话)", "忘掉[所有|一切]"],
        "entity_set": ["[把|将]{entity}(调到|调成|调为|设为|设置为|设置到|调至)[百分之]{value}[%|度]"],
        "entity_on": ["(打开|开启|开|启动)[一下]{entity}", "[把|将]{entity}(打开|开开|开启|开)[了|一下]"],
        "entity_off": ["(关闭|关掉|关上|关)[一下]{entity}", "[把|将]{entity}(关了|关掉|关闭|关上|关)[了|一下]"],
        "calculate": ["[计算|算一下|算算]{expr}(等于|是|得)(几|多少)", "[计算|算一下|算算]{expr}[等于]"],
        "convert": [
            "[把]{amount}{src}(等于|是|合|有|换算成|转换成|换成|转成|折合)[多少|几][个]{dst}",
            "[把]{amount}{src}(换算成|转换成|换成|转成)[多少][个]{dst}[是多少]",
        ],
        "date_day": [
            "{when}是(星期几|周几|礼拜几|几号|几月几号|几月几日|哪天|哪一天|什么日子|几号星期几|星期几几号|几月几号星期几)",
            "{when}(星期几|周几|礼拜几|几号|几月几号)",
        ],
        "date_until": [
            "(离|距离|距)[到]{when}(还有|还剩|有)(几|多少)天", "{when}还有(几|多少)天", "还有(几|多少)天(到|就是|是|就到){when}",
            "(离|距离|距){when}(还有|还剩|有)多久",
        ],
    },
}
