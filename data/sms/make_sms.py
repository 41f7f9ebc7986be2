"""Build the bundled SMS spam dataset that chapter 8 (classification finetuning) trains on offline.

The messages are original writing for minigpt, in the format of the UCI SMS Spam Collection: one message per
line, the label `ham` or `spam`, a TAB, the text. Most messages are written out by hand below; the rest come from
hand-written templates whose slots are filled by a seeded random generator, and a filled template is kept only
if it is not a near-duplicate of a message already kept (word-set overlap), so the set stays varied.

    python data/sms/make_sms.py           # rewrite all.tsv, train.tsv, validation.tsv, test.tsv here
    python data/sms/make_sms.py --check   # exit 1 if the files here differ from what the script makes

The output depends only on SEED and the text in this file (no set or hash ordering is used), so running the
script again reproduces the committed files byte for byte.
"""

import argparse
import os
import random
import re
import sys
import tempfile
from pathlib import Path

SEED = 20240601
HAM_TARGET = 430   # total ham messages (hand-written + filled templates)
SPAM_TARGET = 190  # total spam messages
SPLIT = (0.7, 0.1, 0.2)  # train, validation, test; taken per class so each split keeps the class ratio
NEAR_DUPLICATE = 0.6  # reject a filled template whose word set overlaps a kept message this much (Jaccard)
MAX_PER_TEMPLATE = 3  # at most this many filled variants of any one template
HERE = Path(__file__).resolve().parent

# One message per line. Typos, lower case and abbreviations are on purpose: that is how people text.
HAM_HANDWRITTEN = """
Hey, are we still on for lunch tomorrow? I can do 12:30 at the usual place
Running 10 mins late, sorry!! Bus just sat at the lights for ages
Can you pick up milk on the way home? The big one, not the skimmed
Happy birthday Jess!! 🎉 Hope you have the best day, see you tonight x
lol I just saw the photo from saturday, why is dave holding a traffic cone
Mum says dinner is at 7, don't be late this time
Did you finish the report? Boss asked about it twice already
ok
Thanks for yesterday, I had a really good time
Where did you park? I can't find the car
Just landed. Will call when I get through passport control
Can't talk now, in a meeting. Text me?
Gonna be home late tonight, there's leftovers in the fridge
have u seen my charger anywhere? the white one
Good luck with the interview tomorrow!! You'll smash it 💪
The plumber is coming between 8 and 12 on Thursday, can you be in?
Sorry I missed your call, was in the shower. What's up?
Is it your turn or mine to take the bins out
Train cancelled. Getting the 18:42 instead, should be back by 8
omg the cat just knocked my coffee all over the keyboard
Do you want anything from the shop? Last chance
Meeting moved to 3pm, room B12. Bring the slides
yeah sounds good, see u there
Grandad's out of hospital! He's doing fine, home by tea time
Can you send me the address again? Lost the message
Remember football practice is cancelled today, the pitch is flooded
Just finished the last episode. I am NOT ok. Call me
what time does the film start? 7:15 or 7:45?
I'll bring the salad, you do the drinks?
Haha that's brilliant. Send it to the group chat
K. Will be there in 5
Are you awake?
No worries at all, take your time
Did anyone find a blue umbrella after the party? Pretty sure I left it at yours
Can we move our call to Friday? Something came up with the kids
My phone is on 3% so if I go quiet that's why
I think I left the oven on. Can you check?? I'm already on the motorway
Got the tickets!!! Row F, seats 12 and 13 😍
Nah I'm staying in tonight, totally knackered
Dentist at 9 tomorrow so I'll be in a bit later
Pls don't forget to feed the fish, just a pinch, not the whole tub like last time
Who's got the spare key? Locked out again 🙈
Sure, I can lend you the drill. Come by after 6
Hows your mum doing? Give her my love
Fancy a walk round the park later? Weather's lovely
Any idea what the homework for maths was? Page 42 or 44?
I owe you a coffee for that, seriously
Just saw a fox in the garden bold as anything, sat on the trampoline
We're out of loo roll. Adding it to the list
Brilliant news about the house!! When do you get the keys?
The wifi is down again, I've rung them, engineer coming Tuesday
Left my wallet at work, can you cover me at the pub and I'll pay you back tmrw
Reminder: book club is at Sara's this month, not mine. Bring a bottle if you like
Took the dog to the vet, she's fine, just ate something daft
where r u
On my way
Traffic is horrendous on the ring road, go the back way
i cant believe u told him about the surprise 😂 he has no poker face
Could you print 20 copies of the agenda before the 10 o'clock? Thanks so much
Parents evening is Wed at 5:40. Can you make it or shall I go alone?
Finally finished painting the hallway. Only took three weekends and a small breakdown
Yes please! Two sugars
Hope the journey went ok, let me know you got home safe
Ugh my flight is delayed 2 hours. Grabbing food at the airport
Can you ask your dad if we can borrow the trailer on Sunday
That restaurant was amazing, we have to go back for the desserts
Just checking you're still alive, haven't heard from you in ages!
The kids want pizza. Again. Can you grab some on your way?
Snow day!! School's shut
He said yes!!! 💍 I can't stop shaking
Sorry, wrong number I think? This is Tom's phone
What's the name of that app you were telling me about? The one for recipes
Don't worry about the deposit, I've sorted it
Will you water the tomatoes while we're away? Key's under the pot
Just got out of the exam. I think it went ok?? Question 3 was evil
Told you it would rain. Did you take a coat
Shall I book the table for 8 then? 4 of us?
Happy anniversary you two! 10 years, where does the time go
The printer on floor 2 is jammed again, use the one by reception
lmao no way
Can I call you in 10? Just putting the baby down
Boiler's making that noise again
Guess who I just bumped into at the supermarket... Mrs Patterson from primary school!
I've put the money in your account, should be there by tomorrow
Bring your swimming stuff, the hotel has a pool
Please can someone in this family reply to me
Are you coming to Aunt Liz's on Sunday or not? She's asking
I'm at the front, by the big tree
Heading to the gym, back around 7
Thank you for the flowers, they're beautiful. You really didn't have to
Just a heads up, the car is making a funny clicking noise when you turn left
Can you cover my shift on Saturday? I'll do your Tuesday
What did the doctor say?
Welcome to the team Priya! Lunch is on me on your first day
Cheers mate, appreciate it
We need to talk about the holiday plans, the dates don't work for Jo
I think the big spider is back in the bathroom. I'm not going in there
Nearly home. Put the kettle on?
Do you still have that recipe for the lemon cake?
Sent you the photos from the wedding, there are loads so it might take a while
Morning! How did you sleep?
Mum's birthday is next Friday, shall we go halves on a present?
Saw this and thought of you 😂
The match starts at 3, kick off not 3:30, don't be late
Gonna try the new Thai place on the high street, you in?
Yep got it, thanks
Has anyone seen the tv remote? It was here 5 minutes ago
The landlord finally fixed the window. Only took four months
Sorry about earlier, I was in a mood. Can we talk tonight?
Do you know if the library is open on bank holidays?
Car passed its MOT! Just needs new wipers
Leaving now, see you in about 20
I think I'm coming down with something, might skip tonight
Had the best time at your party, thank you for having us
What's the wifi password again
lunch? I'm starving
Can you grab the parcel from next door, they took it in for us
Jamie got into the team!! So proud of him
Got a puncture on the way to work, late again, great
Our flight is at 6am so we're leaving at 3. Yes, 3.
Fine by me
Sorry for the late reply, been a mad week
Do you need a lift to the station tomorrow?
Yes I'm in the queue, it's massive, keep me a seat
Thanks for the birthday card Nan, I love the drawing of the dog
The meeting notes are in the shared folder, see section 2
Dinner's ready!!! Come down
How much do I owe you for the concert tickets?
We should do a quiz night again soon, last one was a laugh
Is the pharmacy open til 8 or 6?
Cleaned the whole flat. Please nobody touch anything
Dad fell asleep in the cinema again, snoring through the big scene
Just wanted to say thanks for listening yesterday. It really helped
Quick q: is it black tie or just smart?
Nope, never heard of it
Yes! Booked the cottage for 3 nights in June
Can we swap, I'll take the early one
I'm outside
Have you got a spare phone charger at the office? Mine has died
Love you, drive safe
Okay so the plan is: meet at the station at 10, train at 10:20, lunch in town, then the museum
Ha, classic Steve
Did the new sofa arrive ok?
You left your jacket in my car btw
I'm so sorry to hear about your dog. She was the best girl. Thinking of you
Just got paid, drinks on me this weekend
Can somebody tell the group that Friday is cancelled, I'm running out of battery
So apparently we have a new manager starting Monday
Bought way too many strawberries. Want some?
The kids are finally asleep. Wine?
ETA 10 mins
Exam results come out Thursday, I feel sick
sorry cant make it tonight, work stuff. rain check?
Was it you who ate the last yoghurt
We are at table 14 at the back, come find us
Your package came, I put it in the shed
How was the first day at the new job?
It's freezing out, wear a hat
I found a great recipe for the chickpea curry, I'll send it over
Is tomorrow's hike still happening if it rains?
No rush, whenever you get a chance
Just paid the gas bill, my share is 42.50
Can you believe it's already December
Sat nav is taking me through a field. Send help
Coffee at 11? I need a break from this spreadsheet
Thanks for the lift home, you're a star
The school play is at 6:30 on Thursday, she's a tree 🌳
Can't find my keys anywhere, did I leave them in your bag?
Do you want to split a taxi back?
Got my first payslip. Adulting is weird
Are we doing presents this year or just the kids?
I've booked you in for a haircut at 4 on Saturday, hope that's ok
Forgot my lunch, gonna grab something at the canteen
He's asleep on the sofa with the dog, sending pic
Make sure you bring ID, they're checking at the door
Okay I'm officially obsessed with this song
What time do you finish tonight?
Swimming lesson moved to 5:15 because the pool is being cleaned
Tell Grandma thank you for the socks, they're really warm
the bus is here, got to go
Can I borrow your camping stove for the weekend?
Sorry I'm rubbish at replying, I do read them honest
Heard the storm knocked the fence down, is everyone ok?
Any plans for the long weekend?
I'll be at the corner table with a red scarf so you can spot me
Congrats on passing your driving test!! 🚗 Watch out world
The Wi-Fi router is in the cupboard under the stairs if you need to reset it
Oops sent that to the wrong person, ignore me
Shall we get a takeaway tonight? I can't be bothered to cook
Did you get my email about the invoice? Need it approved by Friday
Bring the board games, Rob's bringing snacks
I'm not mad, just disappointed. Also mad. Who ate my chips
See you at 8 then
Reminder, recycling goes out on Monday this week because of the holiday
The baby said her first word today. It was 'dog'. Not mama, not dada. Dog.
Are you free to help me move a wardrobe on Saturday? Pizza provided
Pick me up from the station at 9:30? Pleeease
Just seen the price of petrol, might start cycling
Hi, this is Anna from the book group, Liz gave me your number. Are you coming on Thursday?
Thanks for covering, I owe you one
We're here! Where are you?
Sorry I was short with you on the phone, long day
The neighbours are having a party, I can hear every word of the karaoke
Found your earring in the car
My train's stuck outside Reading, no idea how long
Have fun tonight, don't do anything I wouldn't do
Did you remember to book the dog sitter?
Boss loved the presentation!! Thanks for the help with the charts
Watching the match at Dan's if you want to come
Don't forget your mum's card, it's on the kitchen table
Can you call me when you get a min, nothing bad
Do you know any good plumbers? Ours has retired
I've run out of ideas for dinner, suggestions welcome
That's hilarious 😂😂
The car park is full, I'm on the street round the back
Happy new year! Here's to a better one
Got a bit lost but found it now, parking up
Sure thing
Is it ok if I bring my cousin? She's visiting this week
Lemme know when you're free to chat about the wedding plans
Sorry, can't do Tuesday. Wednesday any good?
Class is cancelled tomorrow, the lecturer is ill
Kettle's broken. This is a disaster
You were right about that film, it was brilliant
What size shoes does Lily wear now? Getting her wellies
Hope you feel better soon, let me know if you need anything dropping round
Can I pay you back next week? Bit skint till payday
Just booked the flights! Lisbon here we come ☀️
The cat has decided my laptop is her bed now
Yes I got the email. I'll have a look this afternoon
Planning to leave at 7 to beat the traffic, that ok?
Did you want the blue one or the green one? They've only got these two left
Quick reminder that rent is due on the 1st
Tell me you watched the final last night
Haven't stopped all day, just sat down for the first time
I'll be at the hospital until about 4, visiting Nan
Can you stop by the chemist and get Calpol? She's got a temperature
No, the other Sarah
Fab, thanks!
Let's aim for 2 and see how it goes
Great game today lads, same time next week
When's your mum's flight landing?
Just waiting for my lunch to arrive, they're slow today
Roads are icy this morning, take it easy
Any chance you could send me your notes from Monday's lecture?
Don't laugh but I've signed up for salsa classes
Ok mum, will do
I'm in the car park, blue Fiesta, come out whenever you're ready
Honestly the best cheesecake I've had in my life
Going to bed, early start. Night x
Found a tenner in my old coat, best day ever
You still up for tennis on Sunday?
Sorry, the kids had my phone, ignore the last 30 emojis
Bin men didn't come again. Third week in a row
We've got a leak in the kitchen ceiling, can you come and have a look?
I'm booking the cinema for Friday. 7pm showing ok for everyone?
What was the name of that beach we went to last year? The one with the caves
Ha, you wish
Got stuck in a lift for 20 minutes at work, all fine now but wow
Dinner at ours Saturday? Nothing fancy, just a curry
We're watching the fireworks from the hill if you want to join
Thanks for organising everything, it was perfect
Mind if I swing by to drop off the book? 10 mins
Call me. Now please. It's about the car
The delivery guy left my parcel in the bin. Actually in the bin.
Not long now! Can't wait to see you all
Back from holiday, so much washing
Lol yes I remember that
Train's packed, I'm standing all the way to Leeds
Well done on the promotion, you totally deserve it
Are you bringing the kids or is it just us?
Don't worry, I found it
Can you text me the code for the garage door?
Running a bit behind, start without me
Had a lovely walk by the river, saw three herons
Nan's asking if you still want the old bike
I'll just have whatever you're having
The gas man is here, did you say the meter was outside or under the stairs?
We're thinking of getting a puppy. Thoughts?
You free for a quick call at 2?
Tried that new yoga class. Could barely walk after, loved it
Oi, you still owe me a rematch at darts
Just realised it's Tuesday, I thought it was Wednesday all day
The shop had no oat milk so I got soya, hope that's ok
Leaving the office now, what do we need for tea?
Sorry, who is this? I got a new phone and lost my contacts
Can we do the video call at 8 your time, 4 mine?
I've got a spare ticket for the theatre Saturday if you want it
Thanks for the tip about the garage, they were really good and cheap
Is it me or is it really hot in the office today
Did you lock the back door?
Mum's made enough lasagne for an army, you're coming over
Ok I've looked at the sofa again and I think we should get the grey one
My sister's having a baby!!! I'm going to be an auntie 🥹
Cancel that, found my glasses. They were on my head
Ha ha very funny, I know it was you who changed my ringtone
Doctor says it's just a sprain, need to rest it for a week
Meet you outside the main entrance in 15
Can't stop laughing at your voice note
Any chance of a lift to football? Mum's car is in the garage
Sorry to text so late, just wanted to check you got home ok
I'm making a playlist for the road trip, send me 3 songs each
Let me know if you need a hand with the move, I'm free all weekend
There's a massive queue at the post office, might be a while
Great news, the vet says the kitten is healthy, we can bring her home Friday
Did you manage to fix the bike in the end?
Looks like the barbecue is off, it's chucking it down
Can I have the number for your cleaner? Ours has moved away
Good shout on the walking boots, feet not hurting at all
Just got the bill from the garage. Sit down before you read the next text
Happy Mother's Day Mum, love you lots, see you at lunch
The heating's not working, I've put a call in to the landlord
We're nearly out of coffee, this is an emergency
Lol I forgot we had the day off, already halfway to work
I'll do the school run tomorrow, you did it all last week
Hello stranger! Fancy catching up over a coffee soon?
Just a reminder that it's non-uniform day tomorrow, £1 for charity
Sorry love, I'm stuck in traffic, start eating without me
Thanks for the chat earlier, feeling much better about it all
That's so kind of you, thank you. Honestly made my week
Has the baby arrived yet?? I keep checking my phone
What are you wearing tonight, smart or jeans?
I've just eaten an entire packet of biscuits and I regret nothing
The bread maker you lent me is amazing, might have to buy one
Do we need to bring anything for the picnic? I've got a blanket and crisps
No idea, ask your dad
Stuck on level 87 of that puzzle game for three days now, send help
Big thanks for walking the dog while I was ill, she loves you now
Sorry, signal's terrible here, I'll call when I'm back in town
My brother's coming to stay for a week, brace yourselves
Did you see the sunset tonight? The whole sky went pink
Remember to take your tablets with food this time
Just put the casserole in, dinner at half 6
Can someone let me in, I'm at the side gate
The hamster escaped again. Found him in the laundry basket
Thinking about you today, I know it's a hard day. Here if you want to talk
Got my exam timetable, first one is on the 12th
Do you want to carpool on Monday? I'm driving in anyway
Can't believe how big the kids are getting in these photos
I'll pop round after work with the spare chairs
We lost 4-1 but Jake scored, so he's over the moon
Just been to the dentist, no fillings!! 🦷
What was the name of your friend who does wedding cakes?
Mum's locked herself out of her email again, can you ring her
Yes I'll be there, wouldn't miss it
Whoever keeps leaving the milk out, please stop
The garden's full of frogs after the rain, the kids are delighted
Could you send me a photo of the meter reading when you get a sec
Went for a run this morning. Well, a jog. Mostly a walk
Tickets sold out in 4 minutes. Gutted
Hi all, just a reminder that the allotment meeting is on Sunday at 11 in the church hall. Please bring your plot number and a mug, we're short of cups. Cake will be provided
Right, so I spoke to the garage and they said the part won't come in until Thursday, which means I'll need the car on Wednesday and Friday if that's ok with you. Sorry!!
Happy 40th big brother! Hope today is brilliant. We've booked the restaurant for 8, don't be late and DON'T wear that shirt. Love from all of us x
Can you do me a massive favour and let the window cleaner in at 10? He needs to get to the back. Money's in the envelope on the fridge, it's £15
Landed safe, hotel is lovely but the room is tiny. Going to get some food and then sleep for about 12 hours. Will ring you tomorrow, love to the kids
Just to let you know I won't be in tomorrow, I've got the flu and can barely get out of bed. I've emailed the slides to Karen so the meeting can still go ahead
Thank you all so much for the cards and the flowers, and for the lasagne, and the soup, and the other lasagne. We're doing ok. It means a lot to know you're all there
So the bad news is we missed the ferry. The good news is there's another one at 6 and a fish and chip shop right by the port. Back about 10 I reckon
Morning! Forecast says rain after lunch, so shall we do the walk early? Meet at the car park at 9, bring a flask, I'll bring the sandwiches
Quick update on Dad: scan results were fine, they're keeping him in one more night just to be safe. He's complaining about the food so he's definitely feeling better
Hello Mrs Ahmed, this is Jo from Year 3. Could Zara bring in an old t-shirt on Monday for the painting project? Thanks so much
I know I said I'd sort the holiday this week but work has been a nightmare. Can we sit down on Sunday and just book something? Anywhere warm, I don't mind
""".strip().splitlines()

SPAM_HANDWRITTEN = """
CONGRATULATIONS! Your number came top in this month's prize draw and £1000 cash is waiting. Call 0909 879 0461 now to claim. 16+ T&Cs apply
URGENT!! Lucky draw result: your mobile has been picked for £2,000. Text PRIZE to 60417 before midnight or it goes to the runner-up
Your parcel could not be delivered due to unpaid customs fee of £1.99. Pay now at http://parcel-redeliver.example/track
Enter our weekly £250 giveaway FREE! Text GO to 73920 and answer one easy question. Standard network rates
You have 1 new voicemail. Please call 0909 879 0470 to listen. Calls cost 150p/min
Need cash fast? Loans from £100 to £5000 approved in minutes, no credit checks! Reply YES for a callback
Dear customer, your account has been suspended. Verify your details at www.secure-bank-login.example within 24 hours
Loyalty reward alert: as one of our best customers a £900 bonus has been reserved in your name. Ring 0909 879 0810 quoting ref MX21. Expires in 12 hrs
Final notice: you are entitled to a tax refund of £312.40. Submit your claim at http://refund-gov.example
You've won a brand new iPhone! Claim yours today at www.freephone-giveaway.example before stocks run out!!
Lonely tonight? Local girls want to chat NOW! Text CHAT to 58314. £1.50/msg, 18+. Send STOP to 58314 to end
Your Royal Mail package is on hold. Confirm your address and pay the £2.99 shipping fee: http://rm-parcel.example
Hi Mum, I dropped my phone in the toilet, this is my new number. Can you send me £250 for the rent? Will pay back Friday
Act now! Your car insurance renewal is 50% off for the next 2 hours only. Call 0808 157 0199 to lock in your price
Your Amazon order #38-20441 has been flagged. If you did not make this purchase call 020 7946 0144 immediately
Get a FREE holiday to the Canaries! You are one of 5 lucky winners. Reply HOLIDAY to 64205 to claim. £3/msg
Bonus points reminder: 800 points on your old account were never redeemed and turn into cash this week only. Call 0909 879 0230, PIN 4155
Win up to £20,000 in our six-day cash quiz! Text QUIZ to 77519 to play. Each question costs £1.50, 16+ only
Your Netflix payment has failed. Update your billing info at http://netflix-billing-update.example or your account will be closed
We have been trying to reach you about your car's extended warranty. Press 1 or call 0808 157 0123 today
Urgent: Suspicious login on your PayPal account from a new device. Secure it now: www.paypal-verify.example
Thanks for your subscription to Ringtone Club! You will be charged £4.50/week. To cancel, text STOP to 52846
Claim your FREE £50 supermarket voucher now! Only 100 left. www.voucher-rewards.example/claim
Good news!!! No matter what, you get either a £1000 cheque or a weekend in Paris. Find out which: call 0909 879 0327 from a landline
Debt problems? The government has a new scheme to write off up to 80% of your debt. Reply INFO now
Your mobile bill this month is £0.00 because you have been selected for our loyalty reward! Confirm at http://loyalty-reward.example
hiya sexy, it's Kaz from the dating site 😘 ur profile is cute, wanna chat? txt KAZ to 66031, only £2 per msg xx
ALERT: Your bank card has been blocked. Call our security team on 0161 496 0172 to unblock it
Last chance! Tickets for the sold-out concert still available for just £5. Reply TIX now. £2/msg
You are due a PPI refund of £2,340. We can get it back for you, no win no fee. Reply CLAIM
Congrats! Your number was picked for a £500 shopping spree. Redeem it online at www.spree-winner.example
Your DVLA vehicle tax payment was unsuccessful. Avoid a fine by updating your details: http://vehicle-tax-renew.example
Dear winner, you have won 1,500,000 USD in the international email lottery. Send your name, address and bank details to claim@lotto-intl.example
URGENT about your phone account: we could not process your latest bill. Visit phone-billing.example to avoid disconnection
Want to earn £500 a day from home? No experience needed! Text JOB to 79188 now
Your package from DHL is waiting. Schedule redelivery here: http://dhl-reschedule.example/id=44812
Important: your health pass has expired. Apply for a new one at www.health-pass-renew.example, £1.99 admin fee
Time to upgrade! Swap your old handset for the newest 5G model at no cost. Ring freephone 0808 157 0166 or reply UPGRADE
Win a £1000 gift card! Answer 3 easy questions at www.quick-survey-prize.example. Winners announced today!
Someone has a crush on you 💘 Want to know who? Text WHO to 60417 to reveal their name. £1.50/msg, 18+
Your phone account has a £48 credit. To claim your refund log in at account-refund.example before it expires tonight
Hello, I am a recruiter. We have a part-time job for you, earn £200-£800 per day. Contact us on WhatsApp +44 7700 900123
Your Apple ID was used to sign in on a new iPad. If this was not you visit apple-id-secure.example immediately
Great news! You have been pre-approved for a credit card with a £3000 limit. Apply in 60 seconds: www.instacredit.example
Text JOKE to 73920 to receive a joke every day! Only £1.50 per message. Txt STOP to quit
Reminder: your free trial of PhotoMagic Pro ends today. You will be charged £29.99/month unless you cancel at photomagic.example
Your energy supplier owes you a rebate of £156.32. Fill in the form at http://energy-rebate.example to receive it
BONUS! Double your money in 7 days with our crypto bot. Guaranteed returns! Start with just £250 at coinbot-profit.example
You have an unclaimed prize from last month's draw. Call 0909 879 0507 to find out what you have won. Calls 150p/min
Summer special: a city break for two plus a chance at £200 of shopping vouchers every week. Txt CITY to 77519, £1.50/wk, cancel anytime
Your mailbox is full. Click here to increase storage or you will stop receiving emails: mail-upgrade.example
Dear Customer, our records show you overpaid your council tax. Claim £219 at http://council-refund.example
Did you know you could be entitled to £4,000 compensation for your accident? Call us free on 0808 157 0181
Get 3 months of music streaming FREE! Reply MUSIC to 64205. After trial £5/week
Your courier delivery failed. We tried to deliver your parcel at 11:42. Rebook now: courier-redeliver.example
LAST CHANCE: your £750 loyalty bonus expires at 23:59 tonight. Call 0909 879 0778 now (£1/min)
Still haven't picked up your FREE tablet? 1 left with your name on it. Text TAB to 52846 now! Offer ends Sunday
URGENT: the tax office has issued a warrant in your name. Call 020 7946 0117 to resolve immediately or face arrest
Your verification code is 482-119. If you didn't request this, reply with the code to cancel the request
As a thank you for being a loyal customer, we are giving you a £100 voucher! Click: www.thankyou-gift.example
Free msg: your ringtone credit of 10 tunes is ready to download. Reply TUNES to 66031. Subscription £3/wk until you text STOP
WARNING: a virus has been detected on your phone! Install our security app now to protect your data: www.phone-cleaner.example
Payday came early! Borrow up to £1,500 today and repay next month. Bad credit OK. Apply at quickcash-now.example
Ur mobile number won 2nd prize in our spring raffle!! Collect ur £350 by calling 0909 879 0615. 150p/min, 18+
We tried to contact you about your recent accident claim. You could be owed thousands. Reply YES and an advisor will call
Dear valued member, your points worth £85 will expire on Sunday. Spend them now at rewards-portal.example
Your TV licence is due to expire. Renew today to avoid prosecution: http://tv-licence-renewal.example
Limited offer!!! Lose 10kg in 10 days with our miracle tea. 80% off today only at slimtea-deal.example
Congratulations, you have been chosen for an exclusive survey. Complete it and receive a £75 reward: survey-reward.example
IMPORTANT: Your SIM card will be deactivated within 24 hours. To keep your number reply with your full name and date of birth
You are invited to join our VIP investment club. Members earn 30% per month. Limited places! Text VIP to 79188
Your gym membership has been upgraded to PLATINUM for free! Confirm your card details at gym-upgrade.example to activate
2 tickets to the Cup final are yours if you answer 1 simple question! Txt FINAL to 58314. £2/txt, 16+
New message from your bank: a payment of £849.99 to ELECTRO-WORLD is pending. Not you? Call 0113 496 0455
Get your FREE credit score now and see how much you could borrow. Visit www.credit-check-free.example
You have been randomly selected to test the new smartwatch for FREE. Just pay £1 postage: gadget-tester.example
Hey it's Amy! Remember me from the party? 😉 Saw ur pic, wanna meet? Txt AMY to 60417 (£1.50/msg)
Final reminder: unpaid toll charge of £5.40 on your vehicle. Pay now to avoid a £70 penalty: toll-pay-online.example
Cash for your old phone! We pay up to £400, more than anyone else. Free envelope, text SELL to 64205
Hi, your Spotify Premium is on us for 12 months! Claim before 6pm today at music-gift.example
xmas offer: get a £200 gift hamper delivered FREE. Just call 0909 879 0999 (calls £1.50/min, avg call 6 mins)
Attention! You have 3 unclaimed parcels at our depot. Track them at http://depot-parcels.example or they will be destroyed
Your loan application for £7,500 has been APPROVED. To release the funds pay the £49 processing fee at loan-release.example
Did you get our last message? You still have a £500 cash prize to collect. Txt CASH to 77519 now!
Your email has won €850,000 in the Euro Mega Draw. Contact our claims agent at agent@mega-draw.example with your reference EMD/2291
We're giving away 50 PlayStations this week! To enter text PLAY to 52846. £1.50 per entry, draw on Friday
Alert from your mobile provider: your contract qualifies for £120 cashback. Claim at cashback-claims.example by Friday
Free horoscope! Discover what the stars have in store for your love life. Text STAR to 73920. £1/day, stop anytime
Reply STOP to stop. Reply WIN to win a trip to New York worth £3,000. Entries cost 50p. 18+
Well done! You have reached level GOLD in our customer rewards. Call 0909 879 0248 to choose your gift. Calls cost £1.50/min
Your pension could be worth 40% more! Free pension review, no obligation. Call 0808 157 0139
We noticed a problem with your delivery address for order 7781-UK. Please confirm at http://order-address-fix.example
FLASH SALE: designer watches from £19. 90% off, 24 hours only! Shop at watch-outlet.example
Someone sent you a secret message ❤️ To read it text READ to 66031. £2 per message received
Customs notice: an item addressed to you is held at the border. Release fee £3.95. Pay: customs-release.example
Your phone has been chosen for a FREE holiday in Tenerife! Just pay taxes of £99. Call 0161 496 0377 today
Earn cash playing games on your phone!! Sign up at play-and-earn.example and get a £20 welcome bonus
Your account is overdue. Contact our collections department on 020 7946 0903 within 48 hrs to avoid court action
Exclusive! Get unlimited calls and texts for just £1 a month. Switch today, reply SWITCH to 58314
Your number has been entered into our £5,000 summer draw! Confirm your entry by calling 0909 879 0355 before Friday. 150p/min
FINAL WARNING: your broadband will be cut off today due to a failed direct debit. Reactivate here: broadband-reconnect.example
Hey! Your friend Zoe sent you a gift card worth £40 🎁 Open it at gift-open.example before it expires
Stop paying too much for energy! Switch today and get £150 credit. Text ENERGY to 79188
Winner notice: ticket 0472 was drawn in the community lottery. Call 0113 496 0988 to collect your £2,500
Your child's school meal account is in arrears. Pay the £12.60 balance now at school-pay-now.example
We owe you money! Our records show an overcharge on your phone bill of £62.18. Claim it back at bill-refund.example
CONGRATS u have been chosen to receive a FREE weekend break for 2. Txt BREAK to 64205 to book ur dates. £2/msg 18+
Hi there, your old mobile number has been added to our rewards list. To collect your £100 simply call 0909 879 0466 today
Your account shows an unpaid balance of £1.00. Pay within 24h to avoid a £90 late fee: quick-settle.example
You have a FREE spin waiting on our lucky wheel! Prizes up to £10,000. Play now at spin-wheel.example
Limited time! Get 12 bottles of premium wine for just £19.99 delivered. Reply WINE to 77519
Notice of intended prosecution: your car was caught speeding. Pay the reduced fine of £35 today at fine-payment.example
Hey, sorry to bother you, I'm stuck abroad and my bank card was stolen. Could you send me £300? Will explain later. Please hurry
Fancy a FREE makeover? Local beauty salon is giving away 20 vouchers worth £80. Txt BEAUTY to 58314 now
This is the final attempt to contact you about your unclaimed inheritance of £48,000. Reply with your full name to proceed
EXCLUSIVE: brand new holiday homes in Spain from £9,999. Call 0808 157 0244 today for a free brochure
Your online order could not be shipped because your card expired. Update payment now at order-update.example
Thanks for entering our prize draw! You have been shortlisted. Call 0909 879 0683 to confirm your entry. 150p/min
Good news! Your mobile contract has been reviewed and you can get £90 back. Reply REFUND and we will call you
Quick cash for your car!! We buy any car, same-day payment. Text CAR to 79188 for a free valuation
Your parking permit has expired. Renew today for £5 at permit-renew.example to avoid a penalty notice
Enjoy a daily dose of cheeky pics! Text PIC to 66031. £3 per pic received, 18+ only. STOP to end
Important update from your bank: new security rules mean you must confirm your PIN at bank-confirm.example today
You've been selected for a FREE trial of our brain-boosting pills! Just pay £2.95 p&p at smart-pills.example
U have won a mystery gift worth up to £500!! To find out what it is call 0909 879 0512. Calls 150p/min, 16+
STOP paying for TV! Watch every channel free with our magic box. Only £49, order at tvbox-deal.example
Your photo has been entered in our Face of the Year contest! See your votes at face-contest.example
Hurry! Only 2 hours left to claim your £25 bonus. Log in at bonus-collect.example with your bank details
Last week to get your FREE solar panels under the new green grant. Call 0808 157 0290 to check if you qualify
Your number has been chosen for a FREE 30-minute psychic reading. Call 0909 879 0777 now. £1.50/min
FREE ringtone! Txt TONE to 52846 now. 18+
Ur £50 bonus is waiting. Call 0909 879 0118
WIN £500 today! Text LUCKY to 73920
Your parcel is on hold: parcel-hold.example
Cash loans in 1 hr. Reply LOAN to 79188
""".strip().splitlines()

# Templates: hand-written messages with slots, filled from SLOTS below. Each template yields at most
# MAX_PER_TEMPLATE variants, so no single sentence pattern dominates a class.
HAM_TEMPLATES = """
Hey {name}, are you free {day}? Thinking of going to {place}
Running about {minutes} mins late, sorry! Save me a seat at {place}?
Can you grab some {grocery} on your way back? We're out
Don't forget we're having dinner with {name} {day}
Just left {place}, home in {minutes} minutes
Is {name} coming to {place} {day} or not? Need to know for the booking
Thanks so much for the {gift}, {name} loved it
Shall we meet at {place} at {time}?
{name} says hi! We're at {place}, come down if you're free
Sorry, I'm stuck at work until {time}. Can we do {weekday} instead?
Do you fancy {takeaway} tonight? I can pick it up
Reminder: {event} is {day} at {time}
Can you tell {name} I'll ring back after {time}
Got to {place} early, I'll grab a table
Picking {name} up from {place} at {time}, back after that
{name} just told me about {event}, why didn't you tell me!! 😂
How was {event}? Want to hear everything
I've left the {thing} on the kitchen table for you
Have you seen my {thing}? I've looked everywhere
Could you lend me your {thing} {day}? I'll bring it back the same day
Happy birthday {name}!! Have an amazing day x
Lovely to see you at {place} {past_day}, let's not leave it so long next time
We're going to {place} {day} if you want to come, leaving about {time}
Still on for {event} {day}? Can't wait
{name}'s been asking about you. Give them a ring when you can
Just bumped into {name} at {place}, they say hello
Made way too much {dish}, come round and help us eat it
Sorry I missed {event}, {excuse}
Can't make {time}, {excuse}. Can we do later?
Dropped the {thing} off at yours, it's by the back door
I'll be at {place} from {time} if anyone wants to join
Hope {event} went well! Did {name} enjoy it?
Ugh, {excuse}. Going to be so late
Fancy {takeaway} and a film {day}? My treat
{name} and I are heading to {place} {day}, come with us
Can you remind me to bring the {thing} {day}
Are we still doing {event}? {name} said it might be cancelled
Cooking {dish} tonight, be home by {time} if you want some
Just got back from {place}, so tired. Speak tomorrow?
{name} is running late, so let's say {time} instead
Who's driving to {event}? I can take 3 in my car
Just found your {thing} in my bag, how did that get there 🤔
""".strip().splitlines()

SPAM_TEMPLATES = """
CONGRATULATIONS! You've won {prize}! Call {premium} now and quote {code}. Offer ends in {hours} hrs
URGENT! Your number has been selected for a £{small} cash reward. Text {keyword} to {shortcode} to claim. £1.50/msg
Your {courier} parcel is waiting for a £{fee} delivery fee. Pay now to avoid return: http://{parcel_site}
FREE entry to win {prize}! Text {keyword} to {shortcode} now. T&Cs apply, 18+ only
Dear customer, your {account} is locked. Verify now at www.{account_site} or it will be closed in {hours} hours
You have been pre-approved for a loan of £{big} with NO credit checks. Reply {keyword} for instant cash
WINNER! You are one of {few} lucky customers chosen to get {prize}. Call {premium} (£1.50/min) before midnight
Your {subscription} payment failed. Update your card at http://{account_site} to keep your account active
Claim your FREE £{small} {shop} voucher today! Limited stock: www.{prize_site}
Final reminder: you are owed a refund of £{small}.{pence}. Submit your claim at http://{account_site} before it expires
Thank you for joining {club}! You will be charged £{fee}/week. To cancel text STOP to {shortcode}
Your {courier} delivery failed at {clock}. Rebook your slot here: {parcel_site}/track?id={ref}
Hi, it's {flirt} 😘 ur number was given to me by a friend. Fancy a chat? Txt {flirt_kw} to {shortcode}, £1.50/msg 18+
ALERT: a payment of £{payment} was taken from your {account}. Not you? Call {premium} now
Your {courier} item is held at our depot. A fee of £{fee} is needed to release it: {parcel_site}
Congrats! You've qualified for £{small} cashback from {shop}. Claim within {hours} hours at www.{prize_site}
Get a brand new {gadget} for just £1! Only {few} left. Reply {keyword} to {shortcode} to grab yours
You have {few} unread messages from a secret admirer! To read them call {premium}. £1.50/min
URGENT: your {subscription} subscription will be cancelled today. Keep it for £{fee} at http://{account_site}
Instant decision loans up to £{big}! Poor credit welcome. Text {keyword} to {shortcode} or apply at {loan_site}
Last reminder!! {prize_cap} is unclaimed in your name. Ring {premium} quoting {code} to arrange delivery
Join {club} for just £{fee}/wk and get your first week FREE! Text {keyword} to {shortcode}. Stop anytime
Your {shop} reward card has £{small} in unused points. Convert them to cash at www.{prize_site}
Security notice: we blocked a sign-in to your {account} at {clock}. Confirm it was you: {account_site}
{courier}: we could not find your house number. Update your address in {hours} hours or your parcel is returned: {parcel_site}
Txt {keyword} to {shortcode} NOW to get {few} free spins and a shot at {prize}! £2/txt, 18+, T&Cs at {prize_site}
Good news from {shop}: you have been picked for a £{small} loyalty gift. Collect it at http://{prize_site} today
Need £{big} by Friday? Cash in your account in 1 hour, no paperwork! Apply at www.{loan_site}
{shop} customer survey: tell us about your last visit and get a £{small} voucher. Takes {few} minutes at www.{prize_site}
Missed call from {courier} about your parcel. Call back on {premium} to arrange delivery (£1.50/min) ref {ref}
Your {subscription} plan renews today at £{fee}/day. If you did not agree to this, cancel at {account_site}
Boost your credit score in {hours} hours and borrow up to £{big}! Text {keyword} to {shortcode}
""".strip().splitlines()

SLOTS = {
    "name": ["Sam", "Priya", "Tom", "Jess", "Mo", "Grace", "Liam", "Aisha", "Ben", "Chloe", "Raj", "Nina",
             "Ollie", "Fatima", "Dan", "Lucy", "Kofi", "Emma", "Jack", "Sofia", "Uncle Pete", "Nan", "Gran"],
    "place": ["the pub", "Luigi's", "the park", "the bakery", "the café on Mill Lane", "the cinema",
              "the leisure centre", "the market", "Gina's", "the beach", "the garden centre", "the library",
              "the bowling alley", "the climbing wall", "the new burger place", "the farm shop"],
    "day": ["tonight", "tomorrow", "on Friday", "on Saturday", "Sunday afternoon", "next week", "this weekend",
            "on Tuesday", "Thursday night"],
    "weekday": ["Monday", "Wednesday", "Friday", "tomorrow", "the weekend"],
    "past_day": ["yesterday", "on Saturday", "last night", "on Sunday", "the other day"],
    "time": ["6", "7:30", "half 5", "8pm", "6:45", "7", "quarter past 6", "9ish", "half 7"],
    "minutes": ["5", "10", "15", "20", "25", "30"],
    "grocery": ["bread", "eggs", "bananas", "milk", "teabags", "butter", "cereal", "apples", "cheese"],
    "takeaway": ["pizza", "fish and chips", "a curry", "sushi", "noodles", "tacos", "a kebab", "Chinese"],
    "dish": ["lasagne", "soup", "chilli", "curry", "pasta bake", "stew", "risotto", "shepherd's pie"],
    "gift": ["flowers", "card", "book", "scarf", "cake", "chocolates", "plant", "mug"],
    "thing": ["umbrella", "ladder", "spare key", "blue jumper", "drill", "passport", "torch", "tent",
              "lunchbox", "hair dryer", "big pan", "camping chair"],
    "event": ["the school concert", "the barbecue", "Mum's party", "the quiz", "parents evening",
              "the 5-a-side match", "the christening", "the leaving do", "the gig", "the open day"],
    "excuse": ["the car wouldn't start", "the baby was poorly", "work ran over", "I had a migraine",
               "my train got cancelled", "I completely forgot, so sorry"],
    "prize": ["a £1000 cash prize", "a brand new laptop", "a luxury holiday for 2", "a £500 gift card",
              "a new smartphone", "a cruise to the Med", "a £2000 shopping spree", "a year of free petrol",
              "a 65-inch TV"],
    "prize_cap": ["Your £1000 cash prize", "A brand new laptop", "A luxury holiday for 2", "A £500 gift card",
                  "Your cruise to the Med", "A £2000 shopping spree", "A 65-inch TV"],
    "gadget": ["laptop", "tablet", "smartwatch", "games console", "pair of wireless earbuds", "5G phone"],
    # Numbers from the ranges Ofcom keeps for drama (0909 879 0xxx premium rate), so none of them is real.
    "premium": ["0909 879 0939", "0909 879 0321", "0909 879 0044", "0909 879 0771", "0909 879 0142",
                "0909 879 0900"],
    "code": ["XR72", "WIN44", "BX901", "GH210", "PZ38", "KT55B"],
    "hours": ["12", "24", "48", "6", "2"],
    "small": ["50", "75", "100", "150", "200", "250", "300"],
    "big": ["500", "750", "1000", "1500", "2000", "3500", "5000"],
    "pence": ["12", "47", "80", "99", "06", "31"],
    "payment": ["849.99", "1,249.00", "399.95", "672.40", "129.99", "2,080.00"],
    "keyword": ["WIN", "CLAIM", "CASH", "YES", "GO", "PRIZE", "BONUS", "FREE"],
    "flirt": ["Jade", "Kelly", "Mia", "Roxy", "Tasha", "Leah"],
    "flirt_kw": ["HOT", "DATE", "MEET", "FUN", "CHAT"],
    # Made-up short codes that do not appear in the UCI collection.
    "shortcode": ["60417", "73920", "58314", "64205", "77519", "52846", "66031", "79188"],
    "courier": ["Royal Mail", "DHL", "Evri", "DPD", "UPS", "FedEx", "Parcelforce"],
    "fee": ["1.45", "2.99", "1.99", "3.50", "4.50", "0.99"],
    # Everything under .example is reserved for examples (RFC 2606), so none of these sites can exist.
    "parcel_site": ["parcel-help.example", "redelivery-uk.example", "track-my-item.example",
                    "parcel-fee.example", "depot-release.example"],
    "account_site": ["secure-verify.example", "account-check.example", "billing-update.example",
                     "login-confirm.example", "refund-centre.example"],
    "prize_site": ["claim-now.example", "win-today.example", "prize-desk.example", "reward-hub.example",
                   "lucky-voucher.example"],
    "loan_site": ["fastloan-uk.example", "cash-in-1hr.example", "easy-lend.example", "loan-approve.example"],
    "account": ["bank account", "Amazon account", "Apple ID", "PayPal account", "online banking",
                "mobile account"],
    "subscription": ["Netflix", "Spotify", "Disney+", "cloud storage", "antivirus", "TV package"],
    "shop": ["Tesco", "Asda", "Argos", "Boots", "Sainsbury's", "Currys"],
    "club": ["Ringtone Club", "Daily Horoscopes", "Joke-a-Day", "Love Quiz", "Wallpaper World", "Fun Facts+"],
    "few": ["3", "5", "10", "12", "20"],
    "clock": ["09:14", "10:52", "13:07", "15:38", "17:21"],
    "ref": ["UK8841", "AB2230", "RX0917", "PT5561", "ZK7302"],
}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9£]+", text.lower()))


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(1, len(a | b))


def fill_templates(templates: list[str], kept: list[str], target: int, rng: random.Random) -> list[str]:
    """Fill templates round-robin until `target` new messages are kept; near-duplicates are thrown away."""
    kept_words = [words(m) for m in kept]
    uses = [0] * len(templates)
    new: list[str] = []
    attempts = 0
    while len(new) < target:
        if attempts > 200 * target:
            raise RuntimeError(f"could only make {len(new)} of {target} distinct messages; add templates or slots")
        i = attempts % len(templates)
        attempts += 1
        if uses[i] >= MAX_PER_TEMPLATE:
            continue
        message = templates[i].format_map({k: rng.choice(v) for k, v in SLOTS.items()})
        w = words(message)
        if any(jaccard(w, other) >= NEAR_DUPLICATE for other in kept_words):
            continue
        uses[i] += 1
        kept_words.append(w)
        new.append(message)
    return new


def check_messages(messages: list[str], label: str) -> None:
    seen: dict[str, int] = {}
    for i, m in enumerate(messages):
        if not m or m != m.strip() or "\t" in m or "\n" in m or "\r" in m:
            raise ValueError(f"{label} message {i} is empty, padded or contains a TAB/newline: {m!r}")
        if m.lower() in seen:
            raise ValueError(f"{label} message {i} repeats message {seen[m.lower()]}: {m!r}")
        seen[m.lower()] = i


def build() -> dict[str, str]:
    """Return {file name: file text} for all.tsv and the three splits."""
    rng = random.Random(SEED)
    ham_hand = [m.strip() for m in HAM_HANDWRITTEN if m.strip()]
    spam_hand = [m.strip() for m in SPAM_HANDWRITTEN if m.strip()]
    check_messages(ham_hand, "hand-written ham")
    check_messages(spam_hand, "hand-written spam")
    # Templates are filled against everything kept so far, so a variant may not echo a hand-written message.
    ham = ham_hand + fill_templates(HAM_TEMPLATES, ham_hand + spam_hand, HAM_TARGET - len(ham_hand), rng)
    spam = spam_hand + fill_templates(SPAM_TEMPLATES, ham + spam_hand, SPAM_TARGET - len(spam_hand), rng)
    check_messages(ham + spam, "final")

    splits: dict[str, list[tuple[str, str]]] = {"train": [], "validation": [], "test": []}
    for label, messages in (("ham", ham), ("spam", spam)):
        order = list(messages)
        rng.shuffle(order)
        n_train = round(SPLIT[0] * len(order))
        n_val = round(SPLIT[1] * len(order))
        splits["train"] += [(label, m) for m in order[:n_train]]
        splits["validation"] += [(label, m) for m in order[n_train:n_train + n_val]]
        splits["test"] += [(label, m) for m in order[n_train + n_val:]]
    everything = [row for rows in splits.values() for row in rows]
    files = {"all.tsv": everything, **{f"{name}.tsv": rows for name, rows in splits.items()}}
    out = {}
    for name, rows in files.items():
        rows = list(rows)
        rng.shuffle(rows)  # mix the classes so a file read in order does not show all ham first
        out[name] = "".join(f"{label}\t{text}\n" for label, text in rows)
    return out


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the .tsv files (default: this folder)")
    args = parser.parse_args()
    files = build()
    if args.check:
        stale = [n for n, t in files.items()
                 if not (args.out / n).exists() or (args.out / n).read_text(encoding="utf-8") != t]
        if stale:
            print(f"These files differ from what make_sms.py makes: {', '.join(stale)}")
            sys.exit(1)
        print(f"All {len(files)} files in {args.out} match what make_sms.py makes.")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write_atomic(args.out / name, text)
        counts = {lab: sum(line.startswith(lab + "\t") for line in text.splitlines()) for lab in ("ham", "spam")}
        print(f"Wrote {args.out / name}: {counts['ham']} ham, {counts['spam']} spam")


if __name__ == "__main__":
    main()
